//! Threads for generated code: a fork-join pool whose parallel regions cost well
//! under a microsecond to start, and a thread count the caller chooses.
//!
//! A training step is a chain of short regions: each matrix product, each large
//! elementwise loop, split across the cores, and the step cannot go on until the
//! region is done. On the workloads a region lasts 10 µs to 2 ms. What a region
//! costs to start and finish therefore matters as much as how it balances:
//!
//! - **The caller works.** The thread that calls a step claims parts of every
//!   region like the `count - 1` pool threads do. Nothing is handed to another
//!   thread only to be waited for.
//! - **Parts are claimed, not assigned.** Each thread takes the next unclaimed part
//!   until none is left, so a pool thread that the operating system has not
//!   scheduled (the machine is shared) costs parallelism, never a wait: the caller
//!   does its parts, and a worker that arrives after the region closed does not
//!   join it.
//! - **Workers spin, then sleep.** Between regions a worker spins on the region
//!   word for a while ([`SPIN`]) and only then parks, so the next region of the
//!   same step starts in well under a microsecond; an idle pool costs nothing.
//! - **No allocation.** Starting a region writes a pointer and one atomic word.
//!
//! Which thread runs a part never changes what the part computes, so callers get
//! results that do not depend on the thread count by making the *partition*
//! independent of it where the arithmetic depends on it (reductions; see
//! `linalg` and generated row loops). A part may use a scratch owned by the thread
//! running it ([`Threads::for_each_with`]).
//!
//! Why not rayon: its regions started from outside its pool (as a user's training
//! step is) go through a mutex and a condition variable, measured at about 16 µs
//! per region here against well under 1 µs for this pool (`nnc-bench --regions`
//! prints both), and a step has dozens of regions. rayon's `join` *inside* its pool
//! is as cheap, but would need the whole step to run on a rayon thread, handed over
//! and waited for at every call. This pool does one thing: run `parts` closures on
//! the threads that are there and wait for them.
//!
//! A region started while another runs on the same pool (from another thread, or
//! from inside a part) runs on the calling thread alone: correct, only slower.
//!
//! ## The thread count
//!
//! [`Threads::shared`] is the pool every workspace uses unless told otherwise: as
//! many threads as the environment variable `NNC_THREADS` says, else one per core
//! ([`std::thread::available_parallelism`]). [`Threads::new`] makes a pool of a
//! given size; [`Threads::one`] runs everything on the caller.

use std::cell::{Cell, UnsafeCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks. Long enough to bridge the serial
/// stretches of a step (and a user's parameter update between steps), short enough
/// that an idle program does not keep a core busy.
pub const SPIN: Duration = Duration::from_micros(200);

/// The most threads a pool may have.
pub const MAX_THREADS: usize = 256;

/// A handle on the threads generated code runs on: cheap to clone, shared.
/// The default is [`Threads::one`] (making one starts no thread); generated
/// workspaces use [`Threads::shared`] unless told otherwise.
#[derive(Clone, Default)]
pub struct Threads {
    pool: Option<Arc<Pool>>,
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Threads({})", self.count())
    }
}

impl Threads {
    /// Everything on the calling thread.
    pub fn one() -> Threads {
        Threads { pool: None }
    }

    /// `count` threads: the caller and `count - 1` pool threads (at least one
    /// thread, at most [`MAX_THREADS`]). If the operating system refuses to start a
    /// thread, the pool has as many as it could start.
    pub fn new(count: usize) -> Threads {
        let count = count.clamp(1, MAX_THREADS);
        if count == 1 {
            return Threads::one();
        }
        Threads {
            pool: Pool::start(count - 1).map(Arc::new),
        }
    }

    /// The shared default: `NNC_THREADS` threads when it is set to a positive
    /// integer, else one per available core. Made on first use.
    pub fn shared() -> Threads {
        static SHARED: OnceLock<Threads> = OnceLock::new();
        SHARED
            .get_or_init(|| Threads::new(count_from_env(std::env::var("NNC_THREADS").ok())))
            .clone()
    }

    /// How many threads run a region.
    pub fn count(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.workers.len() + 1)
    }

    /// Runs `work(part)` once for every part in `0..parts`, on whichever threads
    /// are free, and returns when all are done. A panic in a part is re-raised
    /// here once every claimed part has finished.
    pub fn for_each(&self, parts: usize, work: impl Fn(usize) + Sync) {
        self.for_each_on(parts, &|part, _thread| work(part));
    }

    /// [`Threads::for_each`] with a scratch per thread: a part gets the `scratch`
    /// entry of the thread running it, which no other part uses meanwhile.
    /// `scratch` needs an entry per thread ([`Threads::count`]); with fewer, the
    /// region runs on as many threads as there are entries.
    pub fn for_each_with<T: Send>(
        &self,
        scratch: &mut [T],
        parts: usize,
        work: impl Fn(usize, &mut T) + Sync,
    ) {
        if scratch.is_empty() {
            assert_eq!(parts, 0, "for_each_with: no scratch for {parts} parts");
            return;
        }
        let base = SendPtr(scratch.as_mut_ptr());
        let usable = scratch.len();
        let run = |part: usize, thread: usize| {
            // SAFETY: `thread < usable` (checked by `for_each_on`'s contract below),
            // and a thread runs one part at a time, so no two live `&mut` point at
            // the same entry; `scratch` is borrowed mutably for the whole call.
            let item = unsafe { &mut *base.at(thread) };
            work(part, item)
        };
        if usable < self.count() {
            Threads::one().for_each_on(parts, &run)
        } else {
            self.for_each_on(parts, &run)
        }
    }

    /// [`Threads::for_each`] over `items`, part `i` given `items[i]` mutably.
    pub fn for_each_mut<T: Send>(&self, items: &mut [T], work: impl Fn(usize, &mut T) + Sync) {
        let base = SendPtr(items.as_mut_ptr());
        self.for_each(items.len(), |i| {
            // SAFETY: each part runs exactly once, so each `&mut` is to a different
            // element of `items`, which is borrowed mutably for the call.
            let item = unsafe { &mut *base.at(i) };
            work(i, item)
        });
    }

    /// Runs `work(part, thread)` for every part; `thread < self.count()` names
    /// the thread, and runs one part at a time.
    fn for_each_on(&self, parts: usize, work: &(dyn Fn(usize, usize) + Sync)) {
        match &self.pool {
            Some(pool) if parts > 1 => pool.run(parts, work),
            _ => (0..parts).for_each(|part| work(part, 0)),
        }
    }
}

/// Below this much work (elements times a cost per element: about one for an add,
/// ten or more for an `exp` or `tanh`) a row loop runs on the calling thread. Not
/// only the region's start costs: rows written on another core sit in that core's
/// cache, and the next step of the function reads them from there, which on a
/// shared host can cost ten times more at times (`bench/peers`' cross-core probe:
/// round trips of 47 or 410 ns, in spells). On W2, whose largest loop was 30 000
/// adds, splitting loops of more than 2^15 made the step slower on two threads
/// than on one; with its thin products fused (`nnc_codegen::thin`) its forward loop
/// is 180 000 adds, and split it ran at 2x its 1-thread time in a slow spell (0.074
/// against 0.037 ms, 2026-12-01). W4's tanh loops (over a million) still split.
/// (`nnc_codegen::plan::PARALLEL_WORK` mirrors it: a nest of fixed size below it
/// gets no `for_rows`.)
pub const PARALLEL_WORK: usize = 1 << 19;

/// Runs `body(i, rows)` for every row `i` in `0..rows`, where `rows` holds row `i`
/// of each of `outputs`; the rows are split into contiguous blocks across
/// `threads` when `rows * work_per_row` reaches [`PARALLEL_WORK`].
///
/// This is how generated code runs a loop whose iterations write disjoint rows:
/// each output is handed out row by row, so the loop body is safe code that writes
/// only its own row, whichever thread runs it. Rows are independent, so the result
/// does not depend on the thread count.
pub fn for_rows<'a, O: RowOutputs<'a>>(
    threads: &Threads,
    rows: usize,
    work_per_row: usize,
    outputs: O,
    body: impl Fn(usize, O::Row) + Sync,
) {
    outputs.check(rows);
    let parts = if rows.saturating_mul(work_per_row) < PARALLEL_WORK {
        1
    } else {
        threads.count().min(rows)
    };
    let run_block = |part: usize| {
        let (start, end) = (rows * part / parts, rows * (part + 1) / parts);
        for i in start..end {
            // SAFETY: row `i` is in bounds (`check`), and each row is handed out
            // once: the blocks `start..end` of different parts are disjoint.
            body(i, unsafe { outputs.row(i) });
        }
    };
    if parts == 1 {
        run_block(0);
    } else {
        threads.for_each(parts, run_block);
    }
}

/// Below this much work an elementwise update of a whole tensor ([`for_chunks`])
/// runs on the calling thread. Lower than [`PARALLEL_WORK`]: the tensors it
/// updates (parameters, from their gradients) were mostly written by the GEMM split
/// in the same contiguous halves of rows, so splitting them keeps each half on the
/// core that wrote it rather than moving it.
pub const PARALLEL_UPDATE: usize = 1 << 17;

/// Runs `work(start, chunk)` on disjoint chunks that cover `data` (`chunk` is
/// `data[start..start + chunk.len()]`), split across `threads` when
/// `data.len() * work_per_element` reaches [`PARALLEL_UPDATE`]: for elementwise
/// updates of whole tensors, such as a parameter update.
pub fn for_chunks<T: Send>(
    threads: &Threads,
    data: &mut [T],
    work_per_element: usize,
    work: impl Fn(usize, &mut [T]) + Sync,
) {
    let len = data.len();
    let parts = if len.saturating_mul(work_per_element) < PARALLEL_UPDATE {
        1
    } else {
        threads.count().min(len)
    };
    if parts <= 1 {
        return work(0, data);
    }
    let base = SendPtr(data.as_mut_ptr());
    threads.for_each(parts, |part| {
        let (start, end) = (len * part / parts, len * (part + 1) / parts);
        // SAFETY: the parts' ranges are disjoint and inside `data`, which is
        // borrowed mutably for the call; each part runs once.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.at(start), end - start) };
        work(start, chunk)
    });
}

/// One output of [`for_rows`]: a row-major array of `len / width` rows of `width`
/// elements, borrowed mutably for the loop.
pub struct RowsMut<'a, F> {
    ptr: *mut F,
    len: usize,
    width: usize,
    _borrow: std::marker::PhantomData<&'a mut [F]>,
}

impl<'a, F> RowsMut<'a, F> {
    /// `data` as rows of `width` elements.
    pub fn new(data: &'a mut [F], width: usize) -> RowsMut<'a, F> {
        RowsMut {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            width,
            _borrow: std::marker::PhantomData,
        }
    }
}

// SAFETY: a `RowsMut` is a `&mut [F]` handed out in disjoint rows (see `for_rows`).
unsafe impl<F: Send> Send for RowsMut<'_, F> {}
// SAFETY: as above: shared between threads only to hand out disjoint rows.
unsafe impl<F: Send> Sync for RowsMut<'_, F> {}

/// The outputs of [`for_rows`]: a tuple of [`RowsMut`].
pub trait RowOutputs<'a>: Sync {
    /// One row of each output, borrowed for as long as the outputs were (each row
    /// is handed out once, as `chunks_mut` hands out its chunks).
    type Row;

    /// Panics unless every output has at least `rows` rows.
    fn check(&self, rows: usize);

    /// Row `i` of every output.
    ///
    /// # Safety
    /// `i` must be below the `rows` given to `check`, and no other live reference
    /// may point into row `i` of an output.
    unsafe fn row(&self, i: usize) -> Self::Row;

    /// Panics unless every output is exactly `rows` rows of `width` elements (the
    /// shape of the product whose stretches [`crate::linalg::matmul_then`] hands
    /// out).
    fn check_shape(&self, rows: usize, width: usize);

    /// Elements `j0..j0 + len` of row `i` of every output.
    ///
    /// # Safety
    /// The stretch must be inside the shape given to `check_shape`, and no other
    /// live reference may point into it.
    unsafe fn stretch(&self, i: usize, j0: usize, len: usize) -> Self::Row;
}

macro_rules! row_outputs {
    ($($name:ident $f:ident),+) => {
        impl<'a, $($f: Send + Sync),+> RowOutputs<'a> for ($(RowsMut<'a, $f>,)+) {
            type Row = ($(&'a mut [$f],)+);

            fn check(&self, rows: usize) {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $(assert!(
                    rows.checked_mul($name.width).is_some_and(|n| n <= $name.len),
                    "for_rows: {rows} rows of {} do not fit in {} elements",
                    $name.width,
                    $name.len
                );)+
            }

            unsafe fn row(&self, i: usize) -> Self::Row {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                // SAFETY: the caller's contract: row `i` is inside the array and
                // not borrowed elsewhere.
                unsafe {
                    ($(std::slice::from_raw_parts_mut($name.ptr.add(i * $name.width), $name.width),)+)
                }
            }

            fn check_shape(&self, rows: usize, width: usize) {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $(assert!(
                    $name.width == width && rows.checked_mul(width) == Some($name.len),
                    "matmul_then: an output of {} elements in rows of {}, for a product of \
                     {rows} x {width}",
                    $name.len,
                    $name.width
                );)+
            }

            unsafe fn stretch(&self, i: usize, j0: usize, len: usize) -> Self::Row {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                // SAFETY: the caller's contract: the stretch is inside the array
                // and not borrowed elsewhere.
                unsafe {
                    ($(std::slice::from_raw_parts_mut($name.ptr.add(i * $name.width + j0), len),)+)
                }
            }
        }
    };
}
row_outputs!(A FA);
row_outputs!(A FA, B FB);
row_outputs!(A FA, B FB, C FC);
row_outputs!(A FA, B FB, C FC, D FD);
row_outputs!(A FA, B FB, C FC, D FD, E FE);
row_outputs!(A FA, B FB, C FC, D FD, E FE, G FG);
row_outputs!(A FA, B FB, C FC, D FD, E FE, G FG, H FH);
row_outputs!(A FA, B FB, C FC, D FD, E FE, G FG, H FH, I FI);
row_outputs!(A FA, B FB, C FC, D FD, E FE, G FG, H FH, I FI, J FJ);
row_outputs!(A FA, B FB, C FC, D FD, E FE, G FG, H FH, I FI, J FJ, K FK);
row_outputs!(A FA, B FB, C FC, D FD, E FE, G FG, H FH, I FI, J FJ, K FK, L FL);
row_outputs!(A FA, B FB, C FC, D FD, E FE, G FG, H FH, I FI, J FJ, K FK, L FL, M FM);

/// The most arrays one [`for_rows`] loop writes (the tuples [`RowOutputs`] is
/// implemented for); generated code runs a nest writing more as plain loops.
pub const MAX_ROW_OUTPUTS: usize = 12;

/// The thread count `NNC_THREADS` asks for, else the machine's.
fn count_from_env(value: Option<String>) -> usize {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A raw pointer that may cross threads: the code using it shows why that is sound.
pub(crate) struct SendPtr<T>(pub(crate) *mut T);

// By hand: derived impls would demand `T: Copy`.
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

// SAFETY: only used where the pointee is accessed by one thread at a time (each
// user says why), and `T: Send` lets it be accessed from another thread.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, not `.0`: a closure would capture the field, not
    /// the wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }

    /// The `i`-th element.
    ///
    /// # Safety
    /// As for `pointer::add`.
    unsafe fn at(self, i: usize) -> *mut T {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(i) }
    }
}

/// The region word: a sequence number, whether the region is open, and how many
/// workers are inside it. A worker enters only by a compare-and-swap on this word
/// while the region is open, and the caller closes it only when no worker is
/// inside, so after closing, no worker reads the job.
mod word {
    pub const OPEN: usize = 1 << 15;
    /// Workers inside: the low 15 bits (`MAX_THREADS` is far below 2^15).
    pub const INSIDE: usize = OPEN - 1;
    pub const SEQ: usize = 1 << 16;

    pub fn inside(word: usize) -> usize {
        word & INSIDE
    }

    pub fn is_open(word: usize) -> bool {
        word & OPEN != 0
    }

    pub fn seq(word: usize) -> usize {
        word / SEQ
    }
}

/// The work of the current region, as the workers see it.
#[derive(Clone, Copy)]
struct Job {
    /// The region's closure. Its lifetime is erased: the caller does not return
    /// before the region is closed, and no worker touches a closed region's job.
    work: *const (dyn Fn(usize, usize) + Sync),
    parts: usize,
}

/// State shared by the caller of a region and the workers.
struct Shared {
    /// See [`word`].
    region: AtomicUsize,
    /// The open region's job: written by the caller only while the region is
    /// closed, read by workers only while inside it.
    job: UnsafeCell<Option<Job>>,
    /// The next part to claim, and the parts finished, in the open region.
    next: AtomicUsize,
    done: AtomicUsize,
    /// Set when a part panicked on a worker.
    panicked: AtomicBool,
    stop: AtomicBool,
    /// How many workers have started running (see `Pool::start`).
    started: AtomicUsize,
    /// Per worker: parked, or about to park (see `Worker::wait`).
    sleeping: Vec<AtomicBool>,
}

// SAFETY: `job` is the only field that is not `Sync`; it is written only while the
// region is closed (no worker inside, none can enter), read only by workers inside
// it, and the closure it points to is `Sync`. The region word's release/acquire
// operations order the write before the reads.
unsafe impl Sync for Shared {}
// SAFETY: as above; the closure pointer is dereferenced only inside its region.
unsafe impl Send for Shared {}

struct Pool {
    shared: Arc<Shared>,
    workers: Vec<(Thread, Option<JoinHandle<()>>)>,
    /// Held while a region runs: one region at a time per pool.
    busy: Mutex<()>,
}

thread_local! {
    /// Whether this thread is running a part of a region (nested regions run inline).
    static IN_REGION: Cell<bool> = const { Cell::new(false) };
}

impl Pool {
    /// A pool with `workers` threads besides the caller, or `None` if not even one
    /// could be started.
    fn start(workers: usize) -> Option<Pool> {
        let shared = Arc::new(Shared {
            region: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            started: AtomicUsize::new(0),
            sleeping: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        });
        let mut handles = Vec::with_capacity(workers);
        for index in 0..workers {
            let worker = Worker {
                shared: Arc::clone(&shared),
                index,
            };
            let spawned = thread::Builder::new()
                .name(format!("nnc-worker-{}", index + 1))
                .spawn(move || worker.run());
            match spawned {
                Ok(handle) => handles.push((handle.thread().clone(), Some(handle))),
                Err(_) => break,
            }
        }
        if handles.is_empty() {
            return None;
        }
        // A thread allocates as it starts (the standard library copies its name for
        // the stack-overflow handler), on its own schedule. Waiting here for every
        // worker to reach its loop keeps those allocations inside `Threads::new`, so
        // that once a workspace exists a step allocates nothing on any thread.
        while shared.started.load(Ordering::Acquire) < handles.len() {
            thread::yield_now();
        }
        // A worker that could not start is never woken (`run` wakes `workers`).
        Some(Pool {
            shared,
            workers: handles,
            busy: Mutex::new(()),
        })
    }

    /// Runs a region: parts `0..parts`, `work(part, thread)` shared by the threads.
    fn run(&self, parts: usize, work: &(dyn Fn(usize, usize) + Sync)) {
        let nested = IN_REGION.with(Cell::get);
        let guard = match self.busy.try_lock() {
            _ if nested => None,
            Ok(guard) => Some(guard),
            // A part panicked in an earlier region: the pool itself is sound.
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let Some(_busy) = guard else {
            // Another region holds the pool (or this is one of its parts).
            return (0..parts).for_each(|part| work(part, 0));
        };
        let shared = &*self.shared;
        // SAFETY: erasing the lifetime is sound because this function does not
        // return (or unwind) before `Close` has closed the region, after which no
        // worker dereferences the job.
        let work: *const (dyn Fn(usize, usize) + Sync) = unsafe {
            std::mem::transmute::<
                &(dyn Fn(usize, usize) + Sync),
                &'static (dyn Fn(usize, usize) + Sync),
            >(work)
        };
        // SAFETY: the region is closed (the last `run` closed it, and `busy` keeps
        // other callers out), so no worker reads `job`.
        unsafe { *shared.job.get() = Some(Job { work, parts }) };
        shared.next.store(0, Ordering::Relaxed);
        shared.done.store(0, Ordering::Relaxed);
        let seq = word::seq(shared.region.load(Ordering::Relaxed)).wrapping_add(1);
        // SeqCst pairs with the worker's SeqCst store to `sleeping` and load of
        // `region`: either the worker sees the region open, or we see it asleep.
        shared
            .region
            .store(seq.wrapping_mul(word::SEQ) | word::OPEN, Ordering::SeqCst);
        for (i, (thread, _)) in self.workers.iter().enumerate() {
            if shared.sleeping[i].load(Ordering::SeqCst) {
                thread.unpark();
            }
        }
        let close = Close { shared, parts };
        IN_REGION.with(|r| r.set(true));
        let own = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `work` is alive for this call (it is our argument).
            claim_parts(shared, unsafe { &*work }, parts, 0)
        }));
        IN_REGION.with(|r| r.set(false));
        drop(close);
        if let Err(payload) = own {
            resume_unwind(payload);
        }
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a part of a parallel region panicked on a pool thread");
        }
    }
}

/// Claims and runs parts of the open region until none is left.
fn claim_parts(shared: &Shared, work: &(dyn Fn(usize, usize) + Sync), parts: usize, thread: usize) {
    loop {
        let part = shared.next.fetch_add(1, Ordering::Relaxed);
        if part >= parts {
            return;
        }
        // Counted as done even if it panics, so the caller's wait ends.
        struct Done<'a>(&'a AtomicUsize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Release);
            }
        }
        let _done = Done(&shared.done);
        work(part, thread);
    }
}

/// On drop, waits for every claimed part to finish, then closes the region once
/// no worker is inside it.
struct Close<'a> {
    shared: &'a Shared,
    parts: usize,
}

impl Drop for Close<'_> {
    fn drop(&mut self) {
        let shared = self.shared;
        // Parts not yet claimed (only after the caller's part panicked) are
        // claimed here, so that nobody starts them; the claimed ones are waited for.
        let claimed = shared
            .next
            .fetch_add(self.parts, Ordering::Relaxed)
            .min(self.parts);
        let start = Instant::now();
        let pause = || {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        };
        while shared.done.load(Ordering::Acquire) < claimed {
            pause();
        }
        loop {
            let w = shared.region.load(Ordering::Acquire);
            if word::inside(w) == 0 {
                let closed = w & !word::OPEN;
                if shared
                    .region
                    .compare_exchange_weak(w, closed, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
            } else {
                pause();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // A new sequence number, closed: wakes the workers without letting them in.
        let w = self.shared.region.load(Ordering::SeqCst);
        self.shared
            .region
            .store(w.wrapping_add(word::SEQ) & !word::OPEN, Ordering::SeqCst);
        for (thread, handle) in &mut self.workers {
            thread.unpark();
            if let Some(h) = handle.take() {
                // A worker catches the panics of the parts it runs, so joining
                // can only fail if the thread itself died; nothing to do then.
                let _ = h.join();
            }
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    /// 0-based among the workers; the worker is thread `index + 1` of the pool.
    index: usize,
}

impl Worker {
    fn run(self) {
        let shared = &*self.shared;
        // Regions are numbered from 1: a worker that starts late still joins the
        // first region if it is open.
        let mut seen = 0;
        IN_REGION.with(|r| r.set(true));
        shared.started.fetch_add(1, Ordering::Release);
        loop {
            let w = self.wait(seen);
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            seen = word::seq(w);
            if word::is_open(w) && self.enter(w) {
                self.work_inside();
                shared.region.fetch_sub(1, Ordering::Release);
            }
        }
    }

    /// Enters the region of word `w` if it is still open: one more inside.
    fn enter(&self, mut w: usize) -> bool {
        let region = &self.shared.region;
        let seq = word::seq(w);
        while word::is_open(w) && word::seq(w) == seq {
            match region.compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
        false
    }

    /// Runs parts of the region this worker is inside.
    fn work_inside(&self) {
        let shared = &*self.shared;
        // SAFETY: inside an open region: the caller wrote the job before opening
        // it and does not write it again before closing it, which waits for us.
        let job = unsafe { *shared.job.get() };
        let Some(job) = job else { return };
        let result = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the caller keeps the closure alive until the region closes.
            let work = unsafe { &*job.work };
            claim_parts(shared, work, job.parts, self.index + 1)
        }));
        if result.is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
    }

    /// Waits for a region word with a sequence number other than `seen` (or for
    /// `stop`): spins for [`SPIN`], then parks.
    fn wait(&self, seen: usize) -> usize {
        let shared = &*self.shared;
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let w = shared.region.load(Ordering::Acquire);
            if word::seq(w) != seen || shared.stop.load(Ordering::Relaxed) {
                return w;
            }
            spins = spins.wrapping_add(1);
            // Reading the clock costs more than a spin: look every 64 spins.
            if !spins.is_multiple_of(64) || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let sleeping = &shared.sleeping[self.index];
            sleeping.store(true, Ordering::SeqCst);
            let w = shared.region.load(Ordering::SeqCst);
            if word::seq(w) == seen && !shared.stop.load(Ordering::SeqCst) {
                // A region opened after the load above unparks us: `unpark`
                // before `park` makes `park` return at once.
                thread::park();
            }
            sleeping.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_part_runs_once() {
        for count in [1, 2, 3, 5] {
            let threads = Threads::new(count);
            assert_eq!(threads.count(), count);
            for parts in [0, 1, 2, 7, 64] {
                let runs: Vec<AtomicU64> = (0..parts).map(|_| AtomicU64::new(0)).collect();
                threads.for_each(parts, |i| {
                    runs[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn a_free_worker_takes_parts() {
        let threads = Threads::new(2);
        let caller = thread::current().id();
        let elsewhere = AtomicU64::new(0);
        // Parts long enough that a spinning worker claims some of them.
        for _ in 0..20 {
            threads.for_each(8, |_| {
                if thread::current().id() != caller {
                    elsewhere.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_micros(200));
            });
        }
        assert!(elsewhere.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn each_thread_has_its_own_scratch() {
        let threads = Threads::new(3);
        let mut scratch = vec![(None, 0usize); 3];
        threads.for_each_with(&mut scratch, 60, |_, (owner, runs)| {
            let me = thread::current().id();
            assert!(owner.is_none_or(|o| o == me), "two threads share a scratch");
            *owner = Some(me);
            *runs += 1;
            thread::sleep(Duration::from_micros(20));
        });
        assert_eq!(scratch.iter().map(|(_, r)| r).sum::<usize>(), 60);
    }

    #[test]
    fn for_each_mut_gives_each_part_its_own_item() {
        let threads = Threads::new(3);
        let mut items = vec![0usize; 10];
        threads.for_each_mut(&mut items, |i, item| *item = i * i);
        assert_eq!(items, (0..10).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn a_panic_in_a_part_reaches_the_caller_and_the_pool_still_works() {
        let threads = Threads::new(2);
        for bad in [0, 1] {
            let result = catch_unwind(AssertUnwindSafe(|| {
                threads.for_each(2, |i| assert_ne!(i, bad, "part {i} fails"));
            }));
            assert!(result.is_err(), "part {bad}'s panic was lost");
        }
        let runs = AtomicU64::new(0);
        threads.for_each(4, |_| {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(runs.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn nested_and_concurrent_regions_run_inline() {
        let threads = Threads::new(2);
        let total = AtomicU64::new(0);
        threads.for_each(2, |_| {
            threads.for_each(3, |j| {
                total.fetch_add(j as u64 + 1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
        // Two callers on one pool: one gets it, the other runs inline.
        let t2 = threads.clone();
        let sum = AtomicU64::new(0);
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..100 {
                        t2.for_each(4, |i| {
                            sum.fetch_add(i as u64, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(sum.load(Ordering::Relaxed), 2 * 100 * 6);
    }

    #[test]
    fn a_pool_that_slept_wakes_for_the_next_region() {
        let threads = Threads::new(2);
        threads.for_each(2, |_| {});
        thread::sleep(SPIN * 5);
        let caller = thread::current().id();
        let on_worker = AtomicBool::new(false);
        // The caller's part waits until the worker has run the other one.
        threads.for_each(2, |_| {
            if thread::current().id() != caller {
                on_worker.store(true, Ordering::SeqCst);
            } else {
                let start = Instant::now();
                while !on_worker.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10)
                {
                    thread::yield_now();
                }
            }
        });
        assert!(
            on_worker.load(Ordering::SeqCst),
            "the parked worker never woke"
        );
    }

    #[test]
    fn rows_are_handed_out_once_each_whatever_the_thread_count() {
        for count in [1, 2, 3] {
            let threads = Threads::new(count);
            let (rows, width) = (97, 300);
            let mut a = vec![0u64; rows * width];
            let mut b = vec![0.0f32; rows];
            for_rows(
                &threads,
                rows,
                width,
                (RowsMut::new(&mut a, width), RowsMut::new(&mut b, 1)),
                |i, (a_row, b_row)| {
                    for (j, x) in a_row.iter_mut().enumerate() {
                        *x += (i * width + j) as u64;
                    }
                    b_row[0] += i as f32;
                },
            );
            assert!(a.iter().enumerate().all(|(k, x)| *x == k as u64));
            assert!(b.iter().enumerate().all(|(i, x)| *x == i as f32));
        }
    }

    #[test]
    fn chunks_cover_the_data_once_whatever_the_thread_count() {
        for count in [1, 2, 3] {
            let threads = Threads::new(count);
            for len in [0, 1, 7, 100_003] {
                let mut data = vec![0usize; len];
                for_chunks(&threads, &mut data, 1, |start, chunk| {
                    for (k, x) in chunk.iter_mut().enumerate() {
                        *x += start + k + 1;
                    }
                });
                assert!(
                    data.iter().enumerate().all(|(k, x)| *x == k + 1),
                    "{count} {len}"
                );
            }
        }
    }

    #[test]
    fn a_row_loop_over_more_rows_than_its_outputs_hold_panics() {
        let mut a = vec![0.0f64; 10];
        let result = catch_unwind(AssertUnwindSafe(|| {
            for_rows(&Threads::one(), 6, 1, (RowsMut::new(&mut a, 2),), |_, _| {});
        }));
        assert!(result.is_err());
    }

    #[test]
    fn the_count_comes_from_nnc_threads_when_it_is_a_positive_integer() {
        assert_eq!(count_from_env(Some("3".into())), 3);
        assert_eq!(count_from_env(Some(" 2 ".into())), 2);
        let machine = thread::available_parallelism().map_or(1, |n| n.get());
        for bad in ["0", "-1", "two", ""] {
            assert_eq!(count_from_env(Some(bad.into())), machine, "{bad:?}");
        }
        assert_eq!(count_from_env(None), machine);
        assert_eq!(Threads::new(0).count(), 1);
    }
}
