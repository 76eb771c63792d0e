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
//!
//! Only regular files are replaced by renaming. A destination that is something
//! else — `/dev/null`, `/dev/stdout`, a named pipe — is opened and written in place
//! (renaming over it would swap the device for a regular file: as root, `-o
//! /dev/null` would turn the machine's `/dev/null` into a file that keeps what is
//! written to it, which every later reader of `/dev/null` then reads). Such writes
//! cannot be undone. A symbolic link to a regular file keeps the link: its target is
//! replaced.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A file written to a temporary name beside its destination, not yet in place.
#[derive(Debug)]
pub struct Staged {
    file: Staging,
    /// The path renamed over (a symbolic link's target, not the link).
    target: PathBuf,
}

#[derive(Debug)]
enum Staging {
    /// A regular destination: a temporary file beside it.
    Temporary(tempfile::NamedTempFile),
    /// A device, pipe or socket: written in place.
    InPlace(File),
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
///
/// A destination that exists and is not a regular file (a device such as
/// `/dev/null`, a named pipe) is opened for writing at once instead (see the module
/// documentation).
pub fn stage(path: &Path) -> io::Result<Staged> {
    let target = match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "the destination is a directory",
            ));
        }
        Ok(meta) if !meta.is_file() => {
            let file = fs::OpenOptions::new().write(true).open(path)?;
            return Ok(Staged {
                file: Staging::InPlace(file),
                target: path.to_path_buf(),
            });
        }
        // A link to a regular file: the file is replaced, the link stays.
        Ok(_) if fs::symlink_metadata(path)?.file_type().is_symlink() => fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    Ok(Staged {
        file: Staging::Temporary(temporary_in(directory_of(&target))?),
        target,
    })
}

impl Staged {
    /// The file to write the contents to: the temporary one, or the destination
    /// itself when it is written in place.
    pub fn file(&mut self) -> &mut File {
        match &mut self.file {
            Staging::Temporary(temp) => temp.as_file_mut(),
            Staging::InPlace(file) => file,
        }
    }

    /// Where the file goes when committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the contents to disk and gives the file the mode of the file it
    /// replaces, if any.
    fn prepare(&self) -> io::Result<()> {
        let Staging::Temporary(temp) = &self.file else {
            return Ok(());
        };
        temp.as_file().sync_all()?;
        if let Ok(existing) = fs::metadata(&self.target)
            && existing.is_file()
        {
            fs::set_permissions(temp.path(), existing.permissions())?;
        }
        Ok(())
    }

    /// Renames the file into place (after flushing it).
    pub fn commit(self) -> io::Result<()> {
        self.prepare()?;
        self.persist()
    }

    /// The rename (nothing for a destination written in place).
    fn persist(self) -> io::Result<()> {
        match self.file {
            Staging::Temporary(temp) => temp.persist(&self.target).map(drop).map_err(|e| e.error),
            Staging::InPlace(_) => Ok(()),
        }
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
        let result = backup(&target).and_then(|old| match staged.persist() {
            Ok(()) => Ok(old),
            Err(e) => {
                // Put the old file back before reporting.
                restore(&target, old);
                Err(e)
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

/// Moves an existing `target` aside to a temporary name in its directory (nothing
/// for a new file, or one written in place).
fn backup(target: &Path) -> io::Result<Option<tempfile::TempPath>> {
    if !fs::symlink_metadata(target).is_ok_and(|m| m.is_file()) {
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

    /// `/dev/null` stays a device: renaming over it would replace the machine's
    /// `/dev/null` with a regular file (as root).
    #[cfg(unix)]
    #[test]
    fn devices_are_written_in_place() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        let is_device = || fs::symlink_metadata(null).is_ok_and(|m| m.file_type().is_char_device());
        if !is_device() {
            return; // Not this machine's to check.
        }
        write_atomically(null, |f| f.write_all(b"gone")).expect("written");
        let mut staged = stage(null).expect("staged");
        staged.file().write_all(b"gone").expect("written");
        commit_all(vec![staged]).expect("committed");
        assert!(is_device(), "/dev/null is still a device");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_kept_and_its_target_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (file, link) = (dir.path().join("file"), dir.path().join("link"));
        fs::write(&file, "old").expect("writable");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        write_atomically(&link, |f| f.write_all(b"new")).expect("written");
        assert!(
            fs::symlink_metadata(&link)
                .expect("link")
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&file).expect("file"), "new");
        assert_eq!(entries(dir.path()), 2);
    }

    #[test]
    fn missing_directories_and_directory_targets_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(stage(&dir.path().join("no/such/dir/f")).is_err());
        assert!(stage(dir.path()).is_err());
    }
}
