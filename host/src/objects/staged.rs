//! A file written out of sight, then published at its key in one step, so a
//! reader sees the whole object or none, and a failed task leaves nothing.
//!
//! On Linux the file is anonymous (`O_TMPFILE` in the key's folder) and is
//! published with one `linkat`: a single directory operation where a named
//! temp file costs two (create, rename), and a crash leaves nothing behind.
//! Where that is not available (another OS, a file system without
//! `O_TMPFILE`, no `/proc`), it is the named file `dest#N`, as `object_store`'s
//! local store names its uploads (listings skip `#` names), renamed over `dest`.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

pub struct Staged {
    file: File,
    /// The temp file's name; `None` while it is anonymous.
    name: Option<PathBuf>,
}

impl Staged {
    /// Start a file that will become `dest`, creating the folders it needs.
    pub fn create(dest: &Path) -> std::io::Result<Staged> {
        #[cfg(target_os = "linux")]
        if let Some(file) = anonymous(dest)? {
            return Ok(Staged { file, name: None });
        }
        let (file, name) = create_named(dest)?;
        Ok(Staged { file, name: Some(name) })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Make the file `dest`, replacing any object there.
    pub fn publish(self, dest: &Path) -> std::io::Result<()> {
        let Staged { file, name } = self;
        let name = match name {
            Some(name) => name,
            #[cfg(target_os = "linux")]
            None => match link_anonymous(&file, dest)? {
                None => return Ok(()),
                Some(name) => name,
            },
            #[cfg(not(target_os = "linux"))]
            None => unreachable!("anonymous files exist only on Linux"),
        };
        drop(file);
        std::fs::rename(&name, dest).inspect_err(|_| {
            let _ = std::fs::remove_file(&name);
        })
    }

    /// Drop what was written.
    pub fn discard(self) -> std::io::Result<()> {
        match self.name {
            Some(name) => std::fs::remove_file(name),
            None => Ok(()),
        }
    }
}

/// Run `make` for `dest`; if its folder is missing, create it and run it again.
fn in_folder<T>(dest: &Path, mut make: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    match make() {
        Err(e) if e.kind() == ErrorKind::NotFound => match dest.parent() {
            Some(parent) if !parent.exists() => {
                std::fs::create_dir_all(parent)?;
                make()
            }
            _ => Err(e),
        },
        other => other,
    }
}

/// Create the first free `dest#N`, by `create` (which fails if the name exists).
fn first_free_name<T>(
    dest: &Path,
    mut create: impl FnMut(&Path) -> std::io::Result<T>,
) -> std::io::Result<(T, PathBuf)> {
    for n in 1u32.. {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let name = PathBuf::from(name);
        match create(&name) {
            Ok(made) => return Ok((made, name)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}

fn create_named(dest: &Path) -> std::io::Result<(File, PathBuf)> {
    in_folder(dest, || first_free_name(dest, |name| File::options().write(true).create_new(true).open(name)))
}

/// An `O_TMPFILE` in `dest`'s folder; `None` where the file system has none.
#[cfg(target_os = "linux")]
fn anonymous(dest: &Path) -> std::io::Result<Option<File>> {
    use rustix::fs::{CWD, Mode, OFlags};
    let folder = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let opened = in_folder(dest, || {
        rustix::fs::openat(CWD, folder, OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC, Mode::from_raw_mode(0o666))
            .map_err(std::io::Error::from)
    });
    match opened {
        Ok(fd) => Ok(Some(File::from(fd))),
        // Not supported here (EOPNOTSUPP; EISDIR or EINVAL from older kernels).
        Err(e) if matches!(e.raw_os_error(), Some(95 | 21 | 22)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Give the anonymous `file` the name `dest`. If `dest` exists it is linked
/// as `dest#N` instead, whose name is returned for a rename over `dest`.
#[cfg(target_os = "linux")]
fn link_anonymous(file: &File, dest: &Path) -> std::io::Result<Option<PathBuf>> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::fs::{AtFlags, CWD};
    // `linkat(fd, "", AT_EMPTY_PATH)` skips resolving a /proc path; Linux
    // allows it since 6.10 for a file one opened oneself (before, only with
    // CAP_DAC_READ_SEARCH). Where refused once, /proc is used from then on.
    static EMPTY_PATH_REFUSED: AtomicBool = AtomicBool::new(false);
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let link = |name: &Path| {
        if !EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
            match rustix::fs::linkat(file, "", CWD, name, AtFlags::EMPTY_PATH) {
                Err(e)
                    if e == rustix::io::Errno::PERM
                        || e == rustix::io::Errno::NOENT
                        || e == rustix::io::Errno::INVAL =>
                {
                    EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed);
                }
                done => return done.map_err(std::io::Error::from),
            }
        }
        rustix::fs::linkat(CWD, proc_path.as_str(), CWD, name, AtFlags::SYMLINK_FOLLOW).map_err(std::io::Error::from)
    };
    match link(dest) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Some(first_free_name(dest, link)?.1)),
        // No /proc: copy the bytes into a named file instead.
        Err(e) if e.kind() == ErrorKind::NotFound && !Path::new("/proc/self/fd").exists() => {
            let (mut named, name) = create_named(dest)?;
            let mut source = file.try_clone()?;
            std::io::Seek::rewind(&mut source)?;
            std::io::copy(&mut source, &mut named)?;
            Ok(Some(name))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_new_and_existing_objects_and_discards_without_a_trace() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("a/b/c.txt");
        let mut s = Staged::create(&dest).unwrap();
        s.write_all(b"one").unwrap();
        assert!(!dest.exists(), "nothing visible before publishing");
        s.publish(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");

        // Over an existing object.
        let mut s = Staged::create(&dest).unwrap();
        s.write_all(b"two").unwrap();
        s.publish(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");

        let mut s = Staged::create(&tmp.path().join("a/b/d.txt")).unwrap();
        s.write_all(b"gone").unwrap();
        s.discard().unwrap();
        let names: Vec<_> =
            std::fs::read_dir(tmp.path().join("a/b")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("c.txt")], "no temp files left");

        // The named fallback behaves the same.
        let (mut file, name) = create_named(&tmp.path().join("x/y.txt")).unwrap();
        file.write_all(b"named").unwrap();
        Staged { file, name: Some(name) }.publish(&tmp.path().join("x/y.txt")).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("x/y.txt")).unwrap(), b"named");
    }
}
