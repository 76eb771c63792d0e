//! Files written all or nothing: the one atomic writer of the project (npz files here,
//! `nnc compile -o` and `nnc run --out` in the CLI).
//!
//! A file is first [`stage`]d: written to a uniquely named temporary file in its
//! destination's directory (so the final rename stays on one file system). Only when
//! everything has been written is it [`commit`](Staged::commit)ted: flushed to disk
//! and renamed over the destination, so readers see the old file or the new one, never
//! half of one. Dropping a staged file instead removes it. [`commit_all`] does the
//! same for several files at once: either every destination gets its new file or
//! each keeps the one it had.
//!
//! Permissions are those of an ordinary file the user creates: a new file gets
//! `0o666` less the process's umask (what `>` in a shell gives, not the `0o600` of a
//! temporary file); a file that is replaced keeps its mode.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A file written to a temporary name beside its destination, not yet in place.
#[derive(Debug)]
pub struct Staged {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

/// The directory `path` will be written in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A temporary file in `dir` named `.nnc-XXXXXX.tmp`, created with the mode an
/// ordinary new file gets (`0o666` less the umask).
fn temporary_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".nnc-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The kernel applies the umask to the mode given at creation.
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Starts writing `path`: a temporary file beside it, to be filled through
/// [`Staged::file`] and then committed. Fails when the directory does not exist or
/// cannot be written.
pub fn stage(path: &Path) -> io::Result<Staged> {
    if path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "the destination is a directory",
        ));
    }
    Ok(Staged {
        temp: temporary_in(directory_of(path))?,
        target: path.to_path_buf(),
    })
}

impl Staged {
    /// The temporary file, to write the contents to.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Where the file goes when committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the contents to disk and gives the file the mode of the file it
    /// replaces, if any.
    fn prepare(&self) -> io::Result<()> {
        self.temp.as_file().sync_all()?;
        if let Ok(existing) = fs::metadata(&self.target)
            && existing.is_file()
        {
            fs::set_permissions(self.temp.path(), existing.permissions())?;
        }
        Ok(())
    }

    /// Renames the file into place (after flushing it).
    pub fn commit(self) -> io::Result<()> {
        self.prepare()?;
        self.temp.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Writes `path` by `write`, atomically: on any error the temporary file is removed
/// and `path` is untouched.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let mut staged = stage(path)?;
    write(staged.file())?;
    staged.commit()
}

/// Commits every staged file, all or nothing: if one cannot be renamed into place,
/// the files already renamed are taken back (a replaced file is restored) and the
/// error is returned.
pub fn commit_all(files: Vec<Staged>) -> io::Result<()> {
    for f in &files {
        f.prepare()?;
    }
    // What each committed file replaced: the old file, moved to a backup name.
    let mut done: Vec<(PathBuf, Option<tempfile::TempPath>)> = Vec::new();
    for staged in files {
        let target = staged.target.clone();
        let result = backup(&target).and_then(|old| {
            match staged.temp.persist(&target) {
                Ok(_) => Ok(old),
                Err(e) => {
                    // Put the old file back before reporting.
                    restore(&target, old);
                    Err(e.error)
                }
            }
        });
        match result {
            Ok(old) => done.push((target, old)),
            Err(e) => {
                for (target, old) in done.into_iter().rev() {
                    restore(&target, old);
                }
                return Err(e);
            }
        }
    }
    // Dropping the backups deletes them.
    Ok(())
}

/// Moves an existing `target` aside to a temporary name in its directory.
fn backup(target: &Path) -> io::Result<Option<tempfile::TempPath>> {
    if !target.is_file() {
        return Ok(None);
    }
    let slot = temporary_in(directory_of(target))?.into_temp_path();
    fs::rename(target, &slot)?;
    Ok(Some(slot))
}

/// Undoes a commit: the backup goes back to `target`, or `target` is removed when
/// there was nothing before. Best effort: this runs while another error is reported.
fn restore(target: &Path, old: Option<tempfile::TempPath>) {
    match old {
        Some(slot) => {
            if fs::rename(&slot, target).is_ok() {
                // The path now names the restored file: do not delete it.
                let _ = slot.keep();
            }
        }
        None => {
            let _ = fs::remove_file(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entries(dir: &Path) -> usize {
        fs::read_dir(dir).expect("listable").count()
    }

    #[test]
    fn a_dropped_stage_leaves_nothing_and_a_commit_replaces() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.txt");
        fs::write(&path, "old").expect("writable");
        let mut staged = stage(&path).expect("staged");
        staged.file().write_all(b"new").expect("written");
        drop(staged);
        assert_eq!(fs::read_to_string(&path).expect("readable"), "old");
        assert_eq!(entries(dir.path()), 1, "no temporary file left");
        write_atomically(&path, |f| f.write_all(b"new")).expect("written");
        assert_eq!(fs::read_to_string(&path).expect("readable"), "new");
        assert_eq!(entries(dir.path()), 1);
        let err = write_atomically(&path, |_| Err(io::Error::other("no"))).expect_err("fails");
        assert_eq!(err.to_string(), "no");
        assert_eq!(fs::read_to_string(&path).expect("readable"), "new");
        assert_eq!(entries(dir.path()), 1);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_get_the_umask_mode_and_replaced_files_keep_theirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        // What the process's umask gives an ordinary new file.
        let plain = dir.path().join("plain");
        fs::write(&plain, "").expect("writable");
        let fresh = dir.path().join("fresh");
        write_atomically(&fresh, |f| f.write_all(b"x")).expect("written");
        assert_eq!(mode(&fresh), mode(&plain));
        fs::set_permissions(&fresh, fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomically(&fresh, |f| f.write_all(b"y")).expect("written");
        assert_eq!(mode(&fresh), 0o640, "a replaced file keeps its mode");
    }

    #[test]
    fn commit_all_is_all_or_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "old a").expect("writable");
        let mut first = stage(&a).expect("staged");
        first.file().write_all(b"new a").expect("written");
        let mut second = stage(&b).expect("staged");
        second.file().write_all(b"new b").expect("written");
        // `b` becomes a non-empty directory after staging: its rename must fail.
        fs::create_dir(&b).expect("mkdir");
        fs::write(b.join("inside"), "").expect("writable");
        commit_all(vec![first, second]).expect_err("b cannot be replaced");
        assert_eq!(fs::read_to_string(&a).expect("a"), "old a", "a restored");
        assert!(b.is_dir());
        assert_eq!(entries(dir.path()), 2, "no temporary or backup file left");

        fs::remove_dir_all(&b).expect("rmdir");
        let mut first = stage(&a).expect("staged");
        first.file().write_all(b"new a").expect("written");
        let mut second = stage(&b).expect("staged");
        second.file().write_all(b"new b").expect("written");
        commit_all(vec![first, second]).expect("both written");
        assert_eq!(fs::read_to_string(&a).expect("a"), "new a");
        assert_eq!(fs::read_to_string(&b).expect("b"), "new b");
        assert_eq!(entries(dir.path()), 2);
    }

    #[test]
    fn missing_directories_and_directory_targets_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(stage(&dir.path().join("no/such/dir/f")).is_err());
        assert!(stage(dir.path()).is_err());
    }
}
