//! Hostile `.npz` files through the reader: lying headers, huge shapes, truncation,
//! zip bombs (kept small here), unsupported dtypes, and mutated bytes chosen by
//! proptest. Every one is an error value naming the array, read in memory bounded by
//! what the file holds: never a panic, an abort or a giant allocation.
//!
//! Memory is measured with `allocation-counter`'s global allocator (per thread).

use std::io::{Cursor, Write};
use std::path::Path;

use nnc_runtime::npz::{NpzError, NpzReader};
use proptest::prelude::*;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// An `.npy` file (format 1.0) with this header dictionary and data, padded as numpy
/// pads it.
fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    npy_raw(&dict, data)
}

/// An `.npy` file with a header of any text.
fn npy_raw(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    let unpadded = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(b' ', (64 - unpadded % 64) % 64));
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    out.extend(data);
    out
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A zip archive of `(name, bytes, method)` members.
fn zip_of(members: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes, method) in members {
        let options = SimpleFileOptions::default().compression_method(*method);
        zip.start_file(*name, options).expect("member started");
        zip.write_all(bytes).expect("member written");
    }
    zip.finish().expect("archive finished").into_inner()
}

/// Overwrites the uncompressed size (local header and central directory) of every
/// member: a zip whose directory lies about how much a member inflates to.
fn declare_size(archive: &mut [u8], size: u32) {
    let mut at = 0;
    while at + 4 <= archive.len() {
        let field = match archive[at..at + 4] {
            [0x50, 0x4b, 0x03, 0x04] => Some(at + 22),
            [0x50, 0x4b, 0x01, 0x02] => Some(at + 24),
            _ => None,
        };
        if let Some(f) = field {
            archive[f..f + 4].copy_from_slice(&size.to_le_bytes());
        }
        at += 1;
    }
}

/// What reading every array of `archive` gives: the names, or the first error, and
/// the largest number of bytes held on the heap at once while reading.
fn read_all(archive: &[u8]) -> (Result<Vec<String>, NpzError>, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hostile.npz");
    std::fs::write(&path, archive).expect("writable");
    let mut result = None;
    let info = allocation_counter::measure(|| result = Some(read_path(&path)));
    (result.expect("measured"), info.bytes_max)
}

fn read_path(path: &Path) -> Result<Vec<String>, NpzError> {
    let mut npz = NpzReader::open(path)?;
    let names = npz.names().to_vec();
    for name in &names {
        if name.starts_with('i') {
            npz.index(name)?;
        } else {
            npz.float::<f64>(name)?;
        }
    }
    Ok(names)
}

/// The error message after the path.
#[track_caller]
fn error_of(archive: &[u8]) -> (String, u64) {
    let (result, peak) = read_all(archive);
    let err = result.expect_err("a hostile file is an error");
    (err.kind.to_string(), peak)
}

const MIB: u64 = 1 << 20;

#[test]
fn a_header_claiming_more_than_the_data_allocates_nothing_for_it() {
    // 2^40 float64s claimed (8.8 TB), 80 bytes given.
    let member = npy("<f8", false, "(1099511627776,)", &f64_bytes(&[1.0; 10]));
    for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
        let (message, peak) = error_of(&zip_of(&[("x.npy", &member, method)]));
        assert!(message.contains("array `x`"), "{message}");
        assert!(message.contains("[1099511627776]"), "{message}");
        assert!(message.contains("80 bytes"), "{message}");
        assert!(peak < MIB, "{peak} bytes held while reading");
    }
    // A shape whose byte count overflows.
    let member = npy("<f8", false, "(4294967296, 4294967296)", &[]);
    let (message, _) = error_of(&zip_of(&[("x.npy", &member, CompressionMethod::Stored)]));
    assert!(message.contains("array `x`"), "{message}");
}

#[test]
fn a_zip_bomb_is_refused_before_it_is_inflated() {
    // Ten floats as the header says, then 32 MiB of zeros: deflated to ~32 KiB.
    let mut bomb = npy("<f8", false, "(10,)", &f64_bytes(&[1.0; 10]));
    bomb.resize(bomb.len() + (32 << 20), 0);
    let archive = zip_of(&[("x.npy", &bomb, CompressionMethod::Deflated)]);
    assert!(
        archive.len() < 256 << 10,
        "kept small: {} bytes",
        archive.len()
    );
    let (message, peak) = error_of(&archive);
    assert!(message.contains("array `x`"), "{message}");
    assert!(peak < 4 * MIB, "{peak} bytes held while reading");

    // The same, with a directory that claims the member inflates to the 208 bytes
    // of a well-formed array: reading stops at the claimed size.
    let mut lying = archive.clone();
    declare_size(&mut lying, 128 + 80);
    let (message, peak) = error_of(&lying);
    assert!(message.contains("array `x`"), "{message}");
    assert!(peak < 4 * MIB, "{peak} bytes held while reading");
}

#[test]
fn truncated_files_are_errors() {
    let member = npy("<f8", false, "(100,)", &f64_bytes(&[0.5; 100]));
    let archive = zip_of(&[("x.npy", &member, CompressionMethod::Stored)]);
    assert!(read_all(&archive).0.is_ok(), "the whole file reads");
    for cut in (0..archive.len()).step_by(7) {
        let (result, peak) = read_all(&archive[..cut]);
        assert!(result.is_err(), "cut at {cut} of {}", archive.len());
        assert!(peak < MIB, "cut at {cut}: {peak} bytes");
    }
}

#[test]
fn lying_and_malformed_headers_are_errors_naming_the_array() {
    let four = f64_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (npy("<f8", false, "(3,)", &four), "array `x`"),
        (npy("<f8", false, "(5,)", &four), "array `x`"),
        (npy("<f8", false, "(-1,)", &four), "array `x`"),
        (
            npy_raw("{'descr': '<f8', 'shape': (4,), }", &four),
            "array `x`",
        ),
        (npy_raw("not a dict", &four), "array `x`"),
        (
            npy_raw(
                &format!("{}{}", "(".repeat(100_000), ")".repeat(100_000)),
                &four,
            ),
            "array `x`",
        ),
        (b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec(), "array `x`"),
        (b"\x93NUMPY\x07\x00\x10\x00".to_vec(), "array `x`"),
        (b"not numpy at all".to_vec(), "array `x`"),
        (Vec::new(), "array `x`"),
    ];
    for (member, expected) in cases {
        let archive = zip_of(&[("x.npy", &member, CompressionMethod::Stored)]);
        let (message, peak) = error_of(&archive);
        assert!(message.contains(expected), "{message}");
        assert!(peak < MIB, "{message}: {peak} bytes");
    }
}

#[test]
fn unsupported_dtypes_are_named() {
    let sixteen = [0u8; 16];
    for (descr, friendly) in [
        ("<c16", "complex128"),
        ("|b1", "bool"),
        ("|O", "object"),
        ("<U2", "<U2"),
        ("<f2", "float16"),
    ] {
        let member = npy(descr, false, "(1,)", &sixteen[..descr_size(descr)]);
        let archive = zip_of(&[("x.npy", &member, CompressionMethod::Stored)]);
        let (message, _) = error_of(&archive);
        assert!(
            message.contains("array `x` has dtype"),
            "{descr}: {message}"
        );
        assert!(message.contains(friendly), "{descr}: {message}");
    }
}

fn descr_size(descr: &str) -> usize {
    match descr {
        "<c16" => 16,
        "<U2" => 8,
        "<f2" => 2,
        "|O" => 8,
        _ => 1,
    }
}

#[test]
fn well_formed_variants_still_read() {
    // Fortran order, big-endian floats, a 0-d array, an empty array, int8 indices.
    let mut big_endian: Vec<u8> = Vec::new();
    for v in [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0] {
        big_endian.extend(v.to_be_bytes());
    }
    let archive = zip_of(&[
        (
            "f.npy",
            &npy(
                "<f8",
                true,
                "(2, 3)",
                &f64_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ),
            CompressionMethod::Deflated,
        ),
        (
            "b.npy",
            &npy(">f8", false, "(2, 3)", &big_endian),
            CompressionMethod::Stored,
        ),
        (
            "s.npy",
            &npy("<f4", false, "()", &2.5f32.to_le_bytes()),
            CompressionMethod::Stored,
        ),
        (
            "e.npy",
            &npy("<f8", false, "(0, 3)", &[]),
            CompressionMethod::Stored,
        ),
        (
            "i.npy",
            &npy("|i1", false, "(3,)", &[0, 1, 2]),
            CompressionMethod::Stored,
        ),
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ok.npz");
    std::fs::write(&path, archive).expect("writable");
    let mut npz = NpzReader::open(&path).expect("opens");
    let f = npz.float::<f64>("f").expect("fortran order reads");
    assert_eq!(f.shape(), [2, 3]);
    assert_eq!(f[[0, 1]], 3.0, "column-major data");
    let b = npz.float::<f64>("b").expect("big-endian reads");
    assert_eq!(b[[1, 2]], 6.0);
    assert_eq!(npz.float::<f32>("s").expect("0-d").sum(), 2.5);
    assert_eq!(npz.float::<f64>("e").expect("empty").shape(), [0, 3]);
    assert_eq!(
        npz.index("i").expect("int8").as_slice(),
        Some(&[0, 1, 2][..])
    );
}

/// A small valid archive with a float array and an index array, one stored and one
/// deflated: what the mutations start from.
fn seed_archive() -> Vec<u8> {
    let x = npy("<f8", false, "(2, 3)", &f64_bytes(&[0.5; 6]));
    let idx = npy("<i8", false, "(4,)", &[1u8, 0, 0, 0, 0, 0, 0, 0].repeat(4));
    zip_of(&[
        ("x.npy", &x, CompressionMethod::Stored),
        ("idx.npy", &idx, CompressionMethod::Deflated),
    ])
}

/// A mutation of an archive's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// Sets the byte at (position mod length) to a value.
    Set(usize, u8),
    /// Cuts the file at (position mod length).
    Truncate(usize),
    /// Inserts bytes at (position mod length).
    Insert(usize, Vec<u8>),
    /// Writes a little-endian u32 at (position mod length), for size fields.
    Word(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        2 => (any::<usize>(), prop_oneof![Just(u32::MAX), Just(1 << 31), any::<u32>()])
            .prop_map(|(p, w)| Mutation::Word(p, w)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |p: usize| p % bytes.len();
    match m {
        Mutation::Set(p, b) => {
            let i = at(*p);
            bytes[i] = *b;
        }
        Mutation::Truncate(p) => bytes.truncate(at(*p)),
        Mutation::Insert(p, new) => {
            let i = at(*p);
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::Word(p, w) => {
            let i = at(*p).min(bytes.len().saturating_sub(4));
            let end = (i + 4).min(bytes.len());
            bytes[i..end].copy_from_slice(&w.to_le_bytes()[..end - i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Mutated archives: reading every array never panics, and never holds more than
    /// a few times the file's size (plus the reader's fixed buffers).
    #[test]
    fn mutated_archives_never_panic(mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut bytes = seed_archive();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let (_, peak) = read_all(&bytes);
        prop_assert!(peak < MIB, "{peak} bytes held for a {}-byte file", bytes.len());
    }
}

#[test]
fn members_over_the_limit_are_refused_by_their_declared_size() {
    let member = npy("<f8", false, "(1000,)", &f64_bytes(&[0.0; 1000]));
    let archive = zip_of(&[("x.npy", &member, CompressionMethod::Deflated)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.npz");
    std::fs::write(&path, archive).expect("writable");
    let mut npz = NpzReader::open(&path).expect("opens");
    npz.set_max_member_bytes(4096);
    let err = npz.float::<f64>("x").expect_err("over the limit");
    assert_eq!(
        err.kind.to_string(),
        "array `x` could not be read: it is 8128 bytes uncompressed, more than the limit of 4096 bytes"
    );
    npz.set_max_member_bytes(nnc_runtime::npz::MAX_MEMBER_BYTES);
    assert_eq!(npz.float::<f64>("x").expect("within the limit").len(), 1000);
}

/// The messages a person sees, in full.
#[test]
fn messages_name_the_array_the_shape_and_the_sizes() {
    let member = npy("<f8", false, "(1099511627776,)", &f64_bytes(&[1.0; 10]));
    let (message, _) = error_of(&zip_of(&[("x.npy", &member, CompressionMethod::Stored)]));
    assert_eq!(
        message,
        "array `x` could not be read: its header declares shape [1099511627776] of dtype \
         '<f8', 8796093022208 bytes, but the file holds 80 bytes of data"
    );
    let mut bomb = npy("<f8", false, "(10,)", &f64_bytes(&[1.0; 10]));
    bomb.resize(bomb.len() + (1 << 20), 0);
    let mut lying = zip_of(&[("x.npy", &bomb, CompressionMethod::Deflated)]);
    declare_size(&mut lying, 128 + 80);
    let (message, _) = error_of(&lying);
    assert_eq!(
        message,
        "array `x` could not be read: it holds more data than the archive's directory declares"
    );
}
