//! `.npz` files: parameters, inputs and results by name.
//!
//! - Parameters (or gradients): [`save_tensors`] / [`load_tensors_into`], or for a
//!   model [`save_params`] / [`load_params`]. Loading requires exactly the set's names,
//!   each with exactly the set's shape; on error the set is left unchanged.
//! - Inputs: [`load_inputs`] reads a [`NamedInputs`] for a [`Signature`]; [`save_inputs`]
//!   writes one.
//! - Arrays by name, for callers with their own declarations (the `nnc run` interpreter
//!   path, tools): open an [`NpzReader`], [`check_names`](NpzReader::check_names)
//!   against the declared list, then read each [`float`](NpzReader::float) or
//!   [`index`](NpzReader::index) array. The loaders above are built on it.
//! - Anything else (a loss, outputs, gradients): collect it in an [`NpzBundle`] and
//!   [`NpzBundle::save`] it. [`NpzBundle::results`] follows the one naming convention
//!   of result files, which `nnc run --out` writes too: `loss`, then each output as
//!   `output.NAME` ([`OUTPUT_PREFIX`]), then each gradient as `grad.NAME`
//!   ([`GRAD_PREFIX`]).
//!
//! Types: float arrays may be stored as `f32` or `f64` and are converted to the model's
//! float type (numpy-style rounding). Index arrays may be stored as any integer type
//! (`i8` … `u64`); every value must be non-negative, and is converted to `usize`. Index
//! arrays are written as `i64`, numpy's default integer.
//!
//! Every write is atomic ([`crate::atomic`]): the file is written to a temporary file
//! in the destination's directory, flushed, and renamed over the destination, so a
//! failed write leaves no partial file behind (and keeps any previous file intact).
//! [`NpzBundle::stage`] writes without renaming, for callers that write several files
//! all or nothing ([`crate::atomic::commit_all`]).
//!
//! ## Limits
//!
//! Files are not trusted. Reading holds memory in proportion to what the file holds,
//! never to what it claims:
//!
//! - a member (one array) larger than 4 GiB uncompressed ([`MAX_MEMBER_BYTES`];
//!   [`NpzReader::set_max_member_bytes`] changes it) is refused before it is
//!   inflated, by the size the archive's directory declares;
//! - a member is never read past that declared size, and one that inflates to more
//!   is an error (so a zip bomb costs at most its declared size);
//! - an `.npy` header is at most 64 KiB ([`MAX_HEADER_BYTES`]) with brackets nested at
//!   most 16 deep, and its shape times its dtype's size must equal the bytes that
//!   follow it *before* anything is allocated for the array;
//! - an array is decoded in 64 KiB chunks straight into its result, whose size is
//!   then at most 8 times the member's (an `int8` member read as `usize` indices).
//!
//! Every violation is an [`NpzError`] naming the file and the array.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, CowArray, IxDyn, ShapeBuilder};
use ndarray_npy::{NpzWriter, WriteNpzError};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::cast::from_f64;
use crate::{DimSpec, Float, Model, NamedInputs, OutputValue, Signature, TensorKind, TensorSet};

/// The name result files give the loss.
pub const LOSS_NAME: &str = "loss";
/// The prefix result files put before each output's name: `output.y_pred`.
pub const OUTPUT_PREFIX: &str = "output.";
/// The prefix result files put before each gradient's name: `grad.w1`.
pub const GRAD_PREFIX: &str = "grad.";

/// An error reading or writing an `.npz` file: the file, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", .path.display())]
pub struct NpzError {
    /// The file read or written.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: NpzErrorKind,
}

/// What went wrong with an `.npz` file. Every variant about one array names it.
#[derive(Debug, thiserror::Error)]
pub enum NpzErrorKind {
    /// The file could not be opened for reading.
    #[error("cannot read: {error}")]
    Open {
        /// The error opening it.
        error: io::Error,
    },
    /// Writing the file (to a temporary file beside it, then renaming) failed.
    #[error("{error}")]
    Io {
        /// The error writing, syncing or renaming.
        error: io::Error,
    },
    /// The file is not a zip archive, or its directory cannot be read.
    #[error("not a readable npz file: {error}")]
    Archive {
        /// The error from the zip reader.
        error: zip::result::ZipError,
    },
    /// A member that cannot be read as the array its header describes.
    #[error("array `{name}` could not be read: {problem}")]
    Member {
        /// The array's name (the member's name without `.npy`).
        name: String,
        /// What is wrong with it.
        problem: MemberProblem,
    },
    /// An array could not be written into the archive.
    #[error("array `{name}` could not be written: {error}")]
    WriteArray {
        /// The array's name.
        name: String,
        /// The error from the npz writer.
        error: WriteNpzError,
    },
    /// The archive's directory could not be written after the arrays.
    #[error("could not finish the archive: {error}")]
    Finish {
        /// The error from the npz writer.
        error: WriteNpzError,
    },
    /// Declared arrays the file lacks; `what` names the kind (`input`, `array`).
    #[error("missing {}; the file holds {}", names_list(.what, .missing), names_list("array", .found))]
    Missing {
        /// The kind of array declared, for the message: `input`, `parameter`, `array`.
        what: &'static str,
        /// Every declared name the file lacks.
        missing: Vec<String>,
        /// Every name the file holds.
        found: Vec<String>,
    },
    /// Arrays the file holds that were not declared.
    #[error("unexpected {}; expected {}{}", names_list("array", .extra), if .expected.is_empty() { "" } else { "only " }, names_list(.what, .expected))]
    Extra {
        /// The kind of array declared, for the message: `input`, `parameter`, `array`.
        what: &'static str,
        /// Every name the file holds beyond the declared ones.
        extra: Vec<String>,
        /// Every declared name.
        expected: Vec<String>,
    },
    /// An array's shape differs from the declared shape (or from the shape of the
    /// tensor it is loaded into).
    #[error("array `{name}` has shape {}, expected {expected}", Shape(.actual))]
    Shape {
        /// The array's name.
        name: String,
        /// The shape wanted, as text: declared (`[N, 2]`) or exact (`[2, 100]`).
        expected: String,
        /// The shape the file holds.
        actual: Vec<usize>,
    },
    /// An array's element type is not one that can be read as asked (floats as a
    /// float array, integers as an index array).
    #[error("array `{name}` has dtype {found}, expected {expected}")]
    DType {
        /// The array's name.
        name: String,
        /// The dtype in the file: its `.npy` descriptor, with numpy's name when known
        /// (`<i4 (int32)`).
        found: String,
        /// The dtypes that can be read, in words.
        expected: &'static str,
    },
    /// An index array holds a negative value.
    #[error("array `{name}` holds {value} at {}, which is not a valid index (must be non-negative)", Shape(.position))]
    BadIndex {
        /// The array's name.
        name: String,
        /// The multi-index of the first negative value.
        position: Vec<usize>,
        /// The value, as text.
        value: String,
    },
    /// An index to write does not fit the `int64` that index arrays are stored as.
    #[error("index array `{name}` holds {value}, too large to store as int64")]
    IndexTooLarge {
        /// The array's name.
        name: String,
        /// The first index too large.
        value: usize,
    },
    /// Two arrays of the file, or of the bundle to write, have the same name.
    #[error("array name `{name}` is given twice")]
    Duplicate {
        /// The name given twice.
        name: String,
    },
}

impl NpzError {
    fn new(path: &Path, kind: NpzErrorKind) -> Self {
        NpzError {
            path: path.to_path_buf(),
            kind,
        }
    }
}

/// `array `a`` or `arrays `a`, `b`` (or `no arrays`).
fn names_list(what: &str, names: &[String]) -> String {
    match names {
        [] => format!("no {what}s"),
        [one] => format!("{what} `{one}`"),
        many => format!(
            "{what}s {}",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A concrete shape, printed as `[3, 4]`.
struct Shape<'a>(&'a [usize]);

impl fmt::Display for Shape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{d}")?;
        }
        write!(f, "]")
    }
}

/// A declared shape, printed as `[N, 784]`.
fn spec_string(shape: &[DimSpec]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            DimSpec::Fixed(n) => n.to_string(),
            DimSpec::Runtime(name) => (*name).to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

// ---------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------

/// An `.npz` file open for reading arrays by name, with the conversions of the module
/// docs: float arrays stored as `f32` or `f64` come back in the caller's float type,
/// index arrays of any integer type come back as `usize` (checked non-negative).
///
/// Every error carries the file's path and names the array. Shapes are the caller's to
/// check: the reader returns whatever shape the file holds.
///
/// The file is not trusted: a member larger than [`max_member_bytes`]
/// (default [`MAX_MEMBER_BYTES`]) is refused before it is inflated, and a header's
/// shape and dtype must account for exactly the bytes the member holds before anything
/// is allocated for the array (see the module docs, *Limits*).
///
/// [`max_member_bytes`]: NpzReader::set_max_member_bytes
///
/// ```no_run
/// # fn main() -> Result<(), nnc_runtime::npz::NpzError> {
/// use nnc_runtime::npz::NpzReader;
/// let mut npz = NpzReader::open("inputs.npz".as_ref())?;
/// npz.check_names("input", &["x", "labels"])?;
/// let x = npz.float::<f32>("x")?;
/// let labels = npz.index("labels")?;
/// # Ok(()) }
/// ```
pub struct NpzReader {
    path: PathBuf,
    archive: zip::ZipArchive<BufReader<File>>,
    /// Array names (member names without `.npy`), with their member index.
    members: Vec<(String, usize)>,
    names: Vec<String>,
    max_member_bytes: u64,
}

/// The largest uncompressed member [`NpzReader`] reads unless told otherwise: 4 GiB.
pub const MAX_MEMBER_BYTES: u64 = 1 << 32;

/// The largest `.npy` header accepted (numpy writes under 200 bytes; numpy's own
/// reader refuses more than 10 000 by default).
pub const MAX_HEADER_BYTES: usize = 1 << 16;

/// How deeply brackets may nest in an `.npy` header (numpy's own nest at most 2 deep
/// for the dtypes read here).
const MAX_HEADER_NESTING: usize = 16;

impl NpzReader {
    /// Opens `path` and reads its list of arrays.
    pub fn open(path: &Path) -> Result<Self, NpzError> {
        let archive_err = |error| NpzError::new(path, NpzErrorKind::Archive { error });
        let file =
            File::open(path).map_err(|error| NpzError::new(path, NpzErrorKind::Open { error }))?;
        let archive = zip::ZipArchive::new(BufReader::new(file)).map_err(archive_err)?;
        let members: Vec<(String, usize)> = (0..archive.len())
            .filter_map(|index| {
                let raw = archive.name_for_index(index)?;
                Some((raw.strip_suffix(".npy").unwrap_or(raw).to_string(), index))
            })
            .collect();
        let mut seen = HashSet::new();
        if let Some((name, _)) = members.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            return Err(NpzError::new(
                path,
                NpzErrorKind::Duplicate { name: name.clone() },
            ));
        }
        let names = members.iter().map(|(name, _)| name.clone()).collect();
        Ok(NpzReader {
            path: path.to_path_buf(),
            archive,
            members,
            names,
            max_member_bytes: MAX_MEMBER_BYTES,
        })
    }

    /// Reads members of up to `bytes` uncompressed (default [`MAX_MEMBER_BYTES`]).
    pub fn set_max_member_bytes(&mut self, bytes: u64) -> &mut Self {
        self.max_member_bytes = bytes;
        self
    }

    /// The file's path, as given to [`open`](NpzReader::open).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the arrays in the file, in the file's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Checks the file holds exactly the `declared` arrays (in any order): a
    /// [`Missing`](NpzErrorKind::Missing) error lists every declared name the file
    /// lacks, an [`Extra`](NpzErrorKind::Extra) one every name it holds beyond them.
    /// `what` is the kind of array, for the message: `"input"`, `"parameter"`, `"array"`.
    pub fn check_names(&self, what: &'static str, declared: &[&str]) -> Result<(), NpzError> {
        let missing: Vec<String> = declared
            .iter()
            .filter(|d| !self.names.iter().any(|n| n == *d))
            .map(|d| d.to_string())
            .collect();
        if !missing.is_empty() {
            let found = self.names.clone();
            return Err(self.err(NpzErrorKind::Missing {
                what,
                missing,
                found,
            }));
        }
        let extra: Vec<String> = self
            .names
            .iter()
            .filter(|n| !declared.contains(&n.as_str()))
            .cloned()
            .collect();
        if !extra.is_empty() {
            let expected = declared.iter().map(|d| d.to_string()).collect();
            return Err(self.err(NpzErrorKind::Extra {
                what,
                extra,
                expected,
            }));
        }
        Ok(())
    }

    /// Reads the float array `name`, stored as `f64` or `f32`, converted to `F`.
    pub fn float<F: Float>(&mut self, name: &str) -> Result<ArrayD<F>, NpzError> {
        let values = self.values(
            name,
            "a float array (f32 or f64)",
            |d| d.kind == b'f' && matches!(d.size, 4 | 8),
            |d, bits| match d.size {
                8 => from_f64::<F>(f64::from_bits(bits)),
                _ => from_f64::<F>(f64::from(f32::from_bits(bits as u32))),
            },
        )?;
        self.shaped(name, values)
    }

    /// Reads the index array `name`, stored as any integer type (`i8` … `u64`); every
    /// value must be non-negative.
    pub fn index(&mut self, name: &str) -> Result<ArrayD<usize>, NpzError> {
        let values = self.values(
            name,
            "an integer array (any of i8 … u64)",
            |d| matches!(d.kind, b'i' | b'u'),
            |d, bits| {
                // Sign-extend signed values, so every integer type compares alike.
                let shift = 128 - 8 * d.size as u32;
                match d.kind {
                    b'i' => ((bits as i128) << shift) >> shift,
                    _ => bits as i128,
                }
            },
        )?;
        let mut out = Vec::with_capacity(values.data.len());
        for (flat, &value) in values.data.iter().enumerate() {
            match usize::try_from(value) {
                Ok(v) => out.push(v),
                Err(_) => {
                    let position = position_of(flat, &values.shape, values.fortran);
                    return Err(self.err(NpzErrorKind::BadIndex {
                        name: name.to_string(),
                        position,
                        value: value.to_string(),
                    }));
                }
            }
        }
        self.shaped(
            name,
            Values {
                data: out,
                shape: values.shape,
                fortran: values.fortran,
            },
        )
    }

    fn err(&self, kind: NpzErrorKind) -> NpzError {
        NpzError::new(&self.path, kind)
    }

    fn member_error(&self, name: &str, problem: MemberProblem) -> NpzError {
        self.err(NpzErrorKind::Member {
            name: name.to_string(),
            problem,
        })
    }

    /// The values of array `name` in the file's order, when its dtype is one that
    /// `accept`s (else a dtype error saying `expected`), each converted from its bytes
    /// (as an integer in the file's byte order) by `convert`.
    fn values<T>(
        &mut self,
        name: &str,
        expected: &'static str,
        accept: impl Fn(&Dtype) -> bool,
        convert: impl Fn(&Dtype, u64) -> T,
    ) -> Result<Values<T>, NpzError> {
        let Some(&(_, index)) = self.members.iter().find(|(n, _)| n == name) else {
            let found = self.names.clone();
            return Err(self.err(NpzErrorKind::Missing {
                what: "array",
                missing: vec![name.to_string()],
                found,
            }));
        };
        let limit = self.max_member_bytes;
        let read = open_member(&mut self.archive, index, limit).and_then(|mut member| {
            if !accept(&member.dtype) {
                return Ok(Err(member.dtype.descr));
            }
            let dtype = member.dtype.clone();
            let data = member.decode(|bits| convert(&dtype, bits))?;
            Ok(Ok(Values {
                data,
                shape: member.shape,
                fortran: member.fortran,
            }))
        });
        match read {
            Ok(Ok(values)) => Ok(values),
            Ok(Err(descr)) => Err(self.dtype_error(name, descr, expected)),
            Err(problem) => Err(self.member_error(name, problem)),
        }
    }

    /// `values` (in the file's order) as an array of their shape.
    fn shaped<T>(&self, name: &str, values: Values<T>) -> Result<ArrayD<T>, NpzError> {
        let shape = IxDyn(&values.shape);
        let array = if values.fortran {
            ArrayD::from_shape_vec(shape.f(), values.data)
        } else {
            ArrayD::from_shape_vec(shape, values.data)
        };
        array.map_err(|e| self.member_error(name, MemberProblem::Header(e.to_string())))
    }

    fn dtype_error(&self, name: &str, descr: String, expected: &'static str) -> NpzError {
        let found = match numpy_type_name(&descr) {
            Some(friendly) => format!("{descr} ({friendly})"),
            None => descr,
        };
        self.err(NpzErrorKind::DType {
            name: name.to_string(),
            found,
            expected,
        })
    }

    fn shape_error(&self, name: &str, expected: String, actual: &[usize]) -> NpzError {
        self.err(NpzErrorKind::Shape {
            name: name.to_string(),
            expected,
            actual: actual.to_vec(),
        })
    }
}

/// What is wrong with one member of an archive.
#[derive(Debug, thiserror::Error)]
pub enum MemberProblem {
    /// The archive could not open the member.
    #[error("{0}")]
    Zip(zip::result::ZipError),
    /// Reading the member failed (including a failed checksum).
    #[error("{0}")]
    Io(io::Error),
    /// The `.npy` header is malformed, or the data ends before the header says; the
    /// text says how.
    #[error("its .npy header is malformed: {0}")]
    Header(String),
    /// The member is larger than the reader accepts
    /// ([`NpzReader::set_max_member_bytes`]).
    #[error("it is {size} bytes uncompressed, more than the limit of {limit} bytes")]
    TooLarge {
        /// The member's uncompressed size in bytes, as the archive declares it.
        size: u64,
        /// The most bytes the reader accepts.
        limit: u64,
    },
    /// The data after the header is not the size the header's shape and dtype need.
    #[error("its header declares shape {} of dtype {descr}, {}, but the file holds {data} bytes of data", Shape(.shape), match .needed { Some(n) => format!("{n} bytes"), None => "more bytes than can be counted".to_string() })]
    Size {
        /// The shape the header declares.
        shape: Vec<usize>,
        /// The dtype descriptor the header declares (`<f8`).
        descr: String,
        /// The bytes that shape and dtype need (`None`: more than a `u64` counts).
        needed: Option<u64>,
        /// The bytes of data the member holds after its header.
        data: u64,
    },
    /// The member inflates to more data than the archive's directory declares.
    #[error("it holds more data than the archive's directory declares")]
    Overlong,
}

/// A member's `.npy` header: what the data that follows is.
struct NpyHeader {
    type_descriptor: String,
    fortran: bool,
    shape: Vec<usize>,
    /// Bytes from the start of the member to the data.
    bytes: usize,
}

/// Reads and parses an `.npy` header (format 1.0, 2.0 or 3.0) from `reader`,
/// refusing lengths and nesting that no numpy writes.
fn read_header(reader: &mut impl Read) -> Result<NpyHeader, MemberProblem> {
    let malformed = |why: &str| MemberProblem::Header(why.to_string());
    let io = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => malformed("the member ends inside the header"),
        _ => MemberProblem::Io(e),
    };
    let mut prefix = [0u8; 8];
    reader.read_exact(&mut prefix).map_err(io)?;
    if &prefix[..6] != b"\x93NUMPY" {
        return Err(malformed("it does not start with the .npy magic string"));
    }
    let (len, len_bytes) = match prefix[6] {
        1 => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b).map_err(io)?;
            (u16::from_le_bytes(b) as usize, 2)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            reader.read_exact(&mut b).map_err(io)?;
            (u32::from_le_bytes(b) as usize, 4)
        }
        v => {
            return Err(MemberProblem::Header(format!(
                "format version {v} is not known"
            )));
        }
    };
    if len > MAX_HEADER_BYTES {
        return Err(MemberProblem::Header(format!(
            "it is {len} bytes long, more than the limit of {MAX_HEADER_BYTES}"
        )));
    }
    let mut text = vec![0u8; len];
    reader.read_exact(&mut text).map_err(io)?;
    if !text.is_ascii() && prefix[6] != 3 {
        return Err(malformed("it is not ASCII"));
    }
    if nesting(&text) > MAX_HEADER_NESTING {
        return Err(malformed("its brackets nest too deeply"));
    }
    // ndarray-npy's parser, on the checked bytes only.
    let mut whole = Vec::with_capacity(8 + len_bytes + len);
    whole.extend_from_slice(&prefix);
    whole.extend_from_slice(&(len as u64).to_le_bytes()[..len_bytes]);
    whole.extend_from_slice(&text);
    let header = ndarray_npy::npy::header::Header::from_reader(&mut whole.as_slice())
        .map_err(|e| MemberProblem::Header(e.to_string()))?;
    Ok(NpyHeader {
        type_descriptor: header.type_descriptor.to_string(),
        fortran: header.layout.is_fortran(),
        shape: header.shape,
        bytes: 8 + len_bytes + len,
    })
}

/// The deepest nesting of `(`, `[` and `{` outside quoted strings.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    for &c in text {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(c),
            (None, b'(' | b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, b')' | b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A numpy dtype as the reader understands it: kind (`f`, `i`, `u`; anything else is
/// refused), size in bytes, byte order.
#[derive(Clone)]
struct Dtype {
    /// The descriptor as the file writes it, for messages: `'<f8'`.
    descr: String,
    kind: u8,
    /// 0 for descriptors the reader does not understand (no size check applies).
    size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> Dtype {
        let code = descr.trim_matches('\'');
        let (big_endian, rest) = match code.as_bytes().first() {
            Some(b'>') => (true, &code[1..]),
            Some(b'<' | b'|' | b'=') => (false, &code[1..]),
            _ => (false, code),
        };
        let mut chars = rest.chars();
        let kind = chars.next().filter(char::is_ascii).map_or(0, |c| c as u8);
        let size = match (kind, chars.as_str()) {
            (b'f' | b'i' | b'u', "1" | "2" | "4" | "8") => chars.as_str().parse().unwrap_or(0),
            _ => 0,
        };
        Dtype {
            descr: descr.to_string(),
            kind: if size == 0 { 0 } else { kind },
            size,
            big_endian,
        }
    }
}

/// An array's values in the file's order, with its shape.
struct Values<T> {
    data: Vec<T>,
    shape: Vec<usize>,
    fortran: bool,
}

/// A member positioned at its data, which holds exactly `elements` values of `dtype`.
struct Member<'a> {
    reader: io::Take<zip::read::ZipFile<'a, BufReader<File>>>,
    dtype: Dtype,
    elements: usize,
    shape: Vec<usize>,
    fortran: bool,
}

/// Opens member `index` and reads its header, checking the shape and dtype against
/// the member's size before anything is allocated for the data: the data that
/// follows is then exactly what the header declares.
fn open_member(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    index: usize,
    limit: u64,
) -> Result<Member<'_>, MemberProblem> {
    let file = archive.by_index(index).map_err(MemberProblem::Zip)?;
    let size = file.size();
    if size > limit {
        return Err(MemberProblem::TooLarge { size, limit });
    }
    // Never read past the size the directory declares; one byte more is read at the
    // end to catch a member that inflates to more (and to check its CRC).
    let mut reader = file.take(size);
    let header = read_header(&mut reader)?;
    let dtype = Dtype::parse(&header.type_descriptor);
    let elements = header
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    let data = size - header.bytes as u64;
    let needed = elements.and_then(|n| (n as u64).checked_mul(dtype.size as u64));
    // Unknown dtypes (size 0) are refused by the caller, by name.
    if dtype.size > 0 && needed != Some(data) {
        return Err(MemberProblem::Size {
            shape: header.shape,
            descr: dtype.descr,
            needed,
            data,
        });
    }
    Ok(Member {
        reader,
        dtype,
        elements: elements.unwrap_or(0),
        shape: header.shape,
        fortran: header.fortran,
    })
}

impl Member<'_> {
    /// Every value, in the file's order, each element's bytes given to `convert` as an
    /// integer (read in the file's byte order). Reads in chunks: nothing but the result
    /// is allocated in proportion to the data.
    fn decode<T>(&mut self, convert: impl Fn(u64) -> T) -> Result<Vec<T>, MemberProblem> {
        let (size, big_endian) = (self.dtype.size, self.dtype.big_endian);
        let mut out = Vec::with_capacity(self.elements);
        let mut chunk = vec![0u8; 64 * 1024 / size * size];
        let mut left = self.elements;
        while left > 0 {
            let n = left.min(chunk.len() / size);
            let bytes = &mut chunk[..n * size];
            self.reader.read_exact(bytes).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => MemberProblem::Header(
                    "the member ends before the data its header declares".to_string(),
                ),
                _ => MemberProblem::Io(e),
            })?;
            for element in bytes.chunks_exact(size) {
                let mut word = [0u8; 8];
                let raw = if big_endian {
                    word[8 - size..].copy_from_slice(element);
                    u64::from_be_bytes(word)
                } else {
                    word[..size].copy_from_slice(element);
                    u64::from_le_bytes(word)
                };
                out.push(convert(raw));
            }
            left -= n;
        }
        // Past the declared size, the member must end (this read also checks its CRC).
        let mut probe = [0u8; 1];
        match self.reader.get_mut().read(&mut probe) {
            Ok(0) => Ok(out),
            Ok(_) => Err(MemberProblem::Overlong),
            Err(e) => Err(MemberProblem::Io(e)),
        }
    }
}

/// The multi-index of the `flat`-th value in the file's order.
fn position_of(mut flat: usize, shape: &[usize], fortran: bool) -> Vec<usize> {
    let mut position = vec![0; shape.len()];
    let axes: Vec<usize> = if fortran {
        (0..shape.len()).collect()
    } else {
        (0..shape.len()).rev().collect()
    };
    for axis in axes {
        let d = shape[axis].max(1);
        position[axis] = flat % d;
        flat /= d;
    }
    position
}

/// A readable name for a numpy type descriptor such as `'<i8'`.
fn numpy_type_name(descr: &str) -> Option<&'static str> {
    let code = descr
        .trim_matches('\'')
        .trim_start_matches(['<', '>', '|', '=']);
    Some(match code {
        "b1" | "?" => "bool",
        "i1" => "int8",
        "i2" => "int16",
        "i4" => "int32",
        "i8" => "int64",
        "u1" => "uint8",
        "u2" => "uint16",
        "u4" => "uint32",
        "u8" => "uint64",
        "f2" => "float16",
        "f4" => "float32",
        "f8" => "float64",
        "c8" => "complex64",
        "c16" => "complex128",
        "O" => "object",
        _ => return None,
    })
}

/// Loads every tensor of `set` from `path`, by name.
///
/// The file must hold exactly the set's names, each with exactly the shape the set's
/// tensor has, as a float array (`f32` or `f64`). Everything is read and checked
/// before anything is written, so on error `set` is unchanged.
pub fn load_tensors_into<F: Float>(
    path: &Path,
    set: &mut impl TensorSet<F>,
) -> Result<(), NpzError> {
    let mut reader = NpzReader::open(path)?;
    let names: Vec<&'static str> = set.tensors().into_iter().map(|(name, _)| name).collect();
    reader.check_names("array", &names)?;
    let mut loaded = Vec::with_capacity(names.len());
    for (name, view) in set.tensors() {
        let array = reader.float::<F>(name)?;
        if array.shape() != view.shape() {
            return Err(reader.shape_error(name, Shape(view.shape()).to_string(), array.shape()));
        }
        loaded.push(array);
    }
    for ((_, mut view), array) in set.tensors_mut().into_iter().zip(loaded) {
        view.assign(&array);
    }
    Ok(())
}

/// A model's parameters read from `path` (see [`load_tensors_into`]).
///
/// The parameters are first built by the model's initialisers with a fixed seed, then
/// every one is overwritten from the file.
pub fn load_params<M: Model>(path: &Path) -> Result<M::Params, NpzError> {
    let mut params = M::init_params(&mut StdRng::seed_from_u64(0));
    load_tensors_into(path, &mut params)?;
    Ok(params)
}

/// Reads the inputs `signature` declares from `path`.
///
/// The file must hold exactly the declared inputs. Each must have the declared rank
/// and the declared size on every fixed dim; runtime dims (and index ranges) are left
/// to [`Model::bind_inputs`], which knows how they relate.
pub fn load_inputs<F: Float>(
    path: &Path,
    signature: &Signature,
) -> Result<NamedInputs<F>, NpzError> {
    let mut reader = NpzReader::open(path)?;
    let names: Vec<&str> = signature.inputs.iter().map(|t| t.name).collect();
    reader.check_names("input", &names)?;
    let mut inputs = NamedInputs {
        floats: Vec::new(),
        indices: Vec::new(),
    };
    for info in signature.inputs {
        let name = info.name;
        match info.kind {
            TensorKind::Float => {
                let array = reader.float::<F>(name)?;
                check_declared_shape(&reader, name, info.shape, array.shape())?;
                inputs.floats.push((name.to_string(), array));
            }
            TensorKind::Index => {
                let array = reader.index(name)?;
                check_declared_shape(&reader, name, info.shape, array.shape())?;
                inputs.indices.push((name.to_string(), array));
            }
        }
    }
    Ok(inputs)
}

fn check_declared_shape(
    reader: &NpzReader,
    name: &str,
    declared: &[DimSpec],
    actual: &[usize],
) -> Result<(), NpzError> {
    let fits = |(d, &n): (&DimSpec, &usize)| match d {
        DimSpec::Fixed(size) => *size == n,
        DimSpec::Runtime(_) => true,
    };
    if declared.len() == actual.len() && declared.iter().zip(actual).all(fits) {
        Ok(())
    } else {
        Err(reader.shape_error(name, spec_string(declared), actual))
    }
}

// ---------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------

/// One array to write: floats in the model's type, or indices (written as `i64`).
#[derive(Clone, Debug)]
pub enum NpzArray<'a, F> {
    /// A float array, written in the model's float type.
    Float(CowArray<'a, F, IxDyn>),
    /// An index array, written as `i64`.
    Index(CowArray<'a, usize, IxDyn>),
}

/// Named arrays to be written together to one `.npz` file, in insertion order.
///
/// Arrays are borrowed where possible; a name given twice is an error at
/// [`save`](NpzBundle::save) time.
#[derive(Clone, Debug, Default)]
pub struct NpzBundle<'a, F> {
    entries: Vec<(String, NpzArray<'a, F>)>,
}

impl<'a, F: Float> NpzBundle<'a, F> {
    /// An empty bundle.
    pub fn new() -> Self {
        NpzBundle {
            entries: Vec::new(),
        }
    }

    /// The conventional result file (as `nnc run --out` writes it): the loss as
    /// `loss`, each output as `output.NAME`, each gradient as `grad.NAME`.
    pub fn results(
        loss: F,
        outputs: &'a [(&'static str, OutputValue<F>)],
        grads: &'a impl TensorSet<F>,
    ) -> Self {
        let mut bundle = NpzBundle::new();
        bundle
            .scalar(LOSS_NAME, loss)
            .outputs(OUTPUT_PREFIX, outputs)
            .tensors(GRAD_PREFIX, grads);
        bundle
    }

    /// Adds a float array.
    pub fn float(&mut self, name: impl Into<String>, array: ArrayViewD<'a, F>) -> &mut Self {
        self.entries
            .push((name.into(), NpzArray::Float(array.into())));
        self
    }

    /// Adds an index array.
    pub fn index(&mut self, name: impl Into<String>, array: ArrayViewD<'a, usize>) -> &mut Self {
        self.entries
            .push((name.into(), NpzArray::Index(array.into())));
        self
    }

    /// Adds a 0-d float array holding `value`.
    pub fn scalar(&mut self, name: impl Into<String>, value: F) -> &mut Self {
        let array = ndarray::arr0(value).into_dyn();
        self.entries
            .push((name.into(), NpzArray::Float(array.into())));
        self
    }

    /// Adds model outputs, each as `<prefix><name>`.
    pub fn outputs(
        &mut self,
        prefix: &str,
        outputs: &'a [(&'static str, OutputValue<F>)],
    ) -> &mut Self {
        for (name, value) in outputs {
            let name = format!("{prefix}{name}");
            match value {
                OutputValue::Float(a) => self.float(name, a.view()),
                OutputValue::Index(a) => self.index(name, a.view()),
            };
        }
        self
    }

    /// Adds every tensor of `set` (parameters or gradients) as `<prefix><name>`.
    pub fn tensors(&mut self, prefix: &str, set: &'a impl TensorSet<F>) -> &mut Self {
        for (name, view) in set.tensors() {
            self.float(format!("{prefix}{name}"), view);
        }
        self
    }

    /// Adds every input (floats first, then indices) under its own name.
    pub fn inputs(&mut self, inputs: &'a NamedInputs<F>) -> &mut Self {
        for (name, a) in &inputs.floats {
            self.float(name.as_str(), a.view());
        }
        for (name, a) in &inputs.indices {
            self.index(name.as_str(), a.view());
        }
        self
    }

    /// The names added so far, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// Writes the bundle to `path`, atomically (see the module docs).
    pub fn save(&self, path: &Path) -> Result<(), NpzError> {
        let staged = self.stage(path)?;
        staged
            .commit()
            .map_err(|error| NpzError::new(path, NpzErrorKind::Io { error }))
    }

    /// Writes the bundle to a temporary file beside `path`, to be renamed into place
    /// by [`Staged::commit`](crate::atomic::Staged::commit) or
    /// [`commit_all`](crate::atomic::commit_all) (dropped, it is removed).
    pub fn stage(&self, path: &Path) -> Result<crate::atomic::Staged, NpzError> {
        let mut seen = HashSet::new();
        if let Some(name) = self.names().find(|name| !seen.insert(*name)) {
            return Err(NpzError::new(
                path,
                NpzErrorKind::Duplicate {
                    name: name.to_string(),
                },
            ));
        }
        let mut staged = crate::atomic::stage(path)
            .map_err(|error| NpzError::new(path, NpzErrorKind::Io { error }))?;
        self.write_to(path, staged.file())?;
        Ok(staged)
    }

    fn write_to(&self, path: &Path, file: &mut File) -> Result<(), NpzError> {
        let mut npz = NpzWriter::new(file);
        for (name, array) in &self.entries {
            let written = match array {
                NpzArray::Float(a) => npz.add_array(name.as_str(), a),
                NpzArray::Index(a) => npz.add_array(name.as_str(), &indices_as_i64(path, name, a)?),
            };
            written.map_err(|error| {
                NpzError::new(
                    path,
                    NpzErrorKind::WriteArray {
                        name: name.clone(),
                        error,
                    },
                )
            })?;
        }
        npz.finish()
            .map_err(|error| NpzError::new(path, NpzErrorKind::Finish { error }))?;
        Ok(())
    }
}

fn indices_as_i64(
    path: &Path,
    name: &str,
    a: &CowArray<'_, usize, IxDyn>,
) -> Result<ArrayD<i64>, NpzError> {
    let mut out = ArrayD::<i64>::zeros(a.raw_dim());
    for (slot, &value) in out.iter_mut().zip(a.iter()) {
        *slot = i64::try_from(value).map_err(|_| {
            NpzError::new(
                path,
                NpzErrorKind::IndexTooLarge {
                    name: name.to_string(),
                    value,
                },
            )
        })?;
    }
    Ok(out)
}

/// Writes every tensor of `set` under its own name.
pub fn save_tensors<F: Float>(path: &Path, set: &impl TensorSet<F>) -> Result<(), NpzError> {
    NpzBundle::new().tensors("", set).save(path)
}

/// Writes a model's parameters under their own names.
pub fn save_params<M: Model>(path: &Path, params: &M::Params) -> Result<(), NpzError> {
    save_tensors(path, params)
}

/// Writes inputs under their own names (floats as the model's type, indices as `i64`).
pub fn save_inputs<F: Float>(path: &Path, inputs: &NamedInputs<F>) -> Result<(), NpzError> {
    NpzBundle::new().inputs(inputs).save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TensorInfo;
    use crate::testing::Tensors;
    use ndarray::{arr0, arr1, arr2};
    use std::fs;

    fn params() -> Tensors<f64> {
        Tensors::new(vec![
            ("w", arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn()),
            ("b", arr1(&[0.5, -0.5, 0.25]).into_dyn()),
        ])
    }

    /// Writes raw arrays with ndarray-npy directly, bypassing this module's checks.
    fn write_raw(path: &Path, write: impl FnOnce(&mut NpzWriter<File>)) {
        let mut npz = NpzWriter::new(File::create(path).expect("temp dir is writable"));
        write(&mut npz);
        npz.finish().expect("written");
    }

    /// Loads `file` into a copy of `params()` and compares the error message (after the
    /// path) with `expected`; the set must be unchanged.
    #[track_caller]
    fn check_load_error(path: &Path, expected: &str) {
        let mut set = params();
        let err = load_tensors_into(path, &mut set).expect_err(expected);
        assert_eq!(err.kind.to_string(), expected);
        assert_eq!(err.to_string(), format!("{}: {expected}", path.display()));
        assert_eq!(set, params(), "unchanged on error");
    }

    #[test]
    fn tensors_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("params.npz");
        save_tensors(&path, &params()).expect("saved");
        let mut loaded = params();
        loaded
            .tensors_mut()
            .into_iter()
            .for_each(|(_, mut v)| v.fill(0.0));
        load_tensors_into(&path, &mut loaded).expect("loaded");
        assert_eq!(loaded, params());
        // Only the target remains in the directory: no temporary file is left.
        assert_eq!(fs::read_dir(dir.path()).expect("listable").count(), 1);
    }

    #[test]
    fn f32_arrays_load_into_f64_sets_and_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("p32.npz");
        let p32 = params();
        let as_f32 = Tensors::new(
            p32.tensors()
                .into_iter()
                .map(|(n, v)| (n, v.mapv(|x| x as f32)))
                .collect(),
        );
        save_tensors(&path, &as_f32).expect("saved");
        let mut loaded = params();
        load_tensors_into(&path, &mut loaded).expect("f32 converts to f64");
        assert_eq!(loaded, params());
        let mut back = as_f32.clone();
        save_tensors(&path, &params()).expect("saved");
        load_tensors_into(&path, &mut back).expect("f64 converts to f32");
        assert_eq!(back, as_f32);
    }

    #[test]
    fn load_errors_name_the_array() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.npz");
        let w = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        write_raw(&path, |npz| npz.add_array("w", &w).expect("w"));
        check_load_error(&path, "missing array `b`; the file holds array `w`");

        write_raw(&path, |npz| {
            npz.add_array("w", &w).expect("w");
            npz.add_array("b", &arr1(&[0.0, 0.0, 0.0])).expect("b");
            npz.add_array("extra", &arr0(1.0)).expect("extra");
        });
        check_load_error(
            &path,
            "unexpected array `extra`; expected only arrays `w`, `b`",
        );

        write_raw(&path, |npz| {
            npz.add_array("w", &w.t()).expect("w");
            npz.add_array("b", &arr1(&[0.0, 0.0, 0.0])).expect("b");
        });
        check_load_error(&path, "array `w` has shape [3, 2], expected [2, 3]");

        write_raw(&path, |npz| {
            npz.add_array("w", &w).expect("w");
            npz.add_array("b", &arr1(&[1i32, 2, 3])).expect("b");
        });
        check_load_error(
            &path,
            "array `b` has dtype '<i4' (int32), expected a float array (f32 or f64)",
        );
    }

    #[test]
    fn unreadable_files_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope.npz");
        let err = load_tensors_into(&missing, &mut params()).expect_err("no file");
        assert!(matches!(err.kind, NpzErrorKind::Open { .. }), "{err}");
        assert!(err.to_string().contains("nope.npz: cannot read: "), "{err}");
        let garbage = dir.path().join("garbage.npz");
        fs::write(&garbage, b"not a zip file").expect("writable");
        let err = load_tensors_into(&garbage, &mut params()).expect_err("not a zip");
        assert!(err.to_string().contains("not a readable npz file"), "{err}");
    }

    const SIG: Signature = Signature {
        model: "clf",
        inputs: &[
            TensorInfo {
                name: "x",
                kind: TensorKind::Float,
                shape: &[DimSpec::Runtime("N"), DimSpec::Fixed(2)],
            },
            TensorInfo {
                name: "labels",
                kind: TensorKind::Index,
                shape: &[DimSpec::Runtime("N")],
            },
        ],
        params: &[],
        outputs: &[],
        grads: &[],
    };

    /// Writes `x` (f32) and `labels` (as given) and loads them for [`SIG`].
    fn load_with_labels<T: ndarray_npy::WritableElement>(
        path: &Path,
        x: ndarray::Array2<f32>,
        labels: &[T],
    ) -> Result<NamedInputs<f64>, NpzError> {
        write_raw(path, |npz| {
            npz.add_array("x", &x).expect("x");
            npz.add_array("labels", &ndarray::ArrayView1::from(labels))
                .expect("labels");
        });
        load_inputs(path, &SIG)
    }

    #[test]
    fn inputs_accept_any_integer_type_for_indices() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("in.npz");
        let x = arr2(&[[0.5f32, 1.5], [2.5, 3.5]]);
        let expected_x = arr2(&[[0.5f64, 1.5], [2.5, 3.5]]).into_dyn();
        let expected_labels = arr1(&[1usize, 0]).into_dyn();
        for inputs in [
            load_with_labels(&path, x.clone(), &[1u8, 0]),
            load_with_labels(&path, x.clone(), &[1i32, 0]),
            load_with_labels(&path, x.clone(), &[1i64, 0]),
            load_with_labels(&path, x.clone(), &[1u64, 0]),
            load_with_labels(&path, x.clone(), &[1i8, 0]),
        ] {
            let inputs = inputs.expect("loads");
            assert_eq!(inputs.floats, vec![("x".to_string(), expected_x.clone())]);
            assert_eq!(
                inputs.indices,
                vec![("labels".to_string(), expected_labels.clone())]
            );
        }
    }

    #[test]
    fn input_errors_name_the_array() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("in.npz");
        let x = arr2(&[[0.5f32, 1.5], [2.5, 3.5]]);
        let cases = [
            (
                load_with_labels(&path, x.clone(), &[1i64, -3]),
                "array `labels` holds -3 at [1], which is not a valid index (must be non-negative)",
            ),
            (
                load_with_labels(&path, x.clone(), &[1.0f64, 0.0]),
                "array `labels` has dtype '<f8' (float64), expected an integer array (any of i8 … u64)",
            ),
            (
                load_with_labels(&path, arr2(&[[0.5f32, 1.5, 2.5]]), &[1i64]),
                "array `x` has shape [1, 3], expected [N, 2]",
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(result.expect_err(expected).kind.to_string(), expected);
        }
    }

    #[test]
    fn reader_checks_names_against_a_declared_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("in.npz");
        write_raw(&path, |npz| npz.add_array("x", &arr0(1.0)).expect("x"));
        let npz = NpzReader::open(&path).expect("opens");
        assert_eq!(npz.path(), path);
        assert_eq!(npz.names(), ["x"]);
        npz.check_names("input", &["x"])
            .expect("exactly the declared arrays");
        for (declared, expected) in [
            (
                &["x", "y", "z"][..],
                "missing inputs `y`, `z`; the file holds array `x`",
            ),
            (&["y"][..], "missing input `y`; the file holds array `x`"),
            (&[][..], "unexpected array `x`; expected no parameters"),
        ] {
            let what = if declared.is_empty() {
                "parameter"
            } else {
                "input"
            };
            let err = npz.check_names(what, declared).expect_err(expected);
            assert_eq!(err.kind.to_string(), expected);
        }
    }

    #[test]
    fn inputs_round_trip_through_save_inputs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("in.npz");
        let inputs = NamedInputs {
            floats: vec![("x".to_string(), arr2(&[[1.0f32, 2.0]]).into_dyn())],
            indices: vec![("labels".to_string(), arr1(&[4usize]).into_dyn())],
        };
        save_inputs(&path, &inputs).expect("saved");
        let loaded: NamedInputs<f32> = load_inputs(&path, &SIG).expect("loaded");
        assert_eq!(loaded.floats, inputs.floats);
        assert_eq!(loaded.indices, inputs.indices);
    }

    #[test]
    fn bundles_hold_scalars_outputs_and_prefixed_tensors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("results.npz");
        let outputs = vec![("class", OutputValue::Index(arr1(&[2usize, 0]).into_dyn()))];
        let grads = params();
        NpzBundle::results(1.5, &outputs, &grads)
            .save(&path)
            .expect("saved");
        let mut npz = ndarray_npy::NpzReader::new(File::open(&path).expect("exists")).expect("npz");
        assert_eq!(
            npz.names().expect("names"),
            vec!["loss", "output.class", "grad.w", "grad.b"]
        );
        let loss: ndarray::Array0<f64> = npz.by_name("loss").expect("loss");
        assert_eq!(loss, arr0(1.5));
        let class: ndarray::Array1<i64> = npz.by_name("output.class").expect("class");
        assert_eq!(class, arr1(&[2, 0]));
        let gw: ArrayD<f64> = npz.by_name("grad.w").expect("grad.w");
        assert_eq!(gw, params().tensors()[0].1);
    }

    #[test]
    fn failed_writes_leave_no_file_and_keep_the_old_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.npz");
        save_tensors(&path, &params()).expect("saved");
        let before = fs::read(&path).expect("readable");

        let mut dup = NpzBundle::<f64>::new();
        dup.scalar("a", 1.0).scalar("a", 2.0);
        let err = dup.save(&path).expect_err("duplicate");
        assert_eq!(err.kind.to_string(), "array name `a` is given twice");

        // Fails half-way: the first array is written before the second is refused.
        let huge = arr1(&[usize::MAX]).into_dyn();
        let mut half = NpzBundle::<f64>::new();
        half.scalar("a", 1.0).index("too_big", huge.view());
        let err = half.save(&path).expect_err("too large for i64");
        assert_eq!(
            err.kind.to_string(),
            format!(
                "index array `too_big` holds {}, too large to store as int64",
                usize::MAX
            )
        );
        assert_eq!(
            fs::read(&path).expect("readable"),
            before,
            "old file intact"
        );
        assert_eq!(
            fs::read_dir(dir.path()).expect("listable").count(),
            1,
            "no temporary file left"
        );

        let fresh = dir.path().join("fresh.npz");
        half.save(&fresh).expect_err("too large for i64");
        assert!(!fresh.exists());
        let nowhere = dir.path().join("no/such/dir/out.npz");
        assert!(matches!(
            save_tensors(&nowhere, &params()).map_err(|e| e.kind),
            Err(NpzErrorKind::Io { .. })
        ));
    }
}
