//! Outputs written to the local filesystem for `kiln process`: each output goes
//! to a temp file beside its destination and is renamed into place on commit,
//! so a failed task leaves nothing behind.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::runtime::{OutputTarget, OutputWriter};

/// Where `kiln process` puts outputs.
pub enum Destination {
    /// A folder: output 1 is `{barename}.{autoext}`, output N is `{barename}-N.{autoext}`.
    Folder { dir: PathBuf, barename: String },
    /// One file; a second output is an error.
    File(PathBuf),
    /// Standard output; a second output is an error.
    Stdout,
}

pub struct LocalTarget {
    pub destination: Destination,
}

#[async_trait::async_trait]
impl OutputTarget for LocalTarget {
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String> {
        let path = match &self.destination {
            Destination::Folder { dir, barename } => {
                let ext = extension.map(|e| format!(".{e}")).unwrap_or_default();
                if index == 1 {
                    dir.join(format!("{barename}{ext}"))
                } else {
                    dir.join(format!("{barename}-{index}{ext}"))
                }
            }
            Destination::File(_) | Destination::Stdout if index > 1 => {
                return Err("the plugin writes several outputs: give `-o` a folder".into());
            }
            Destination::File(path) => path.clone(),
            Destination::Stdout => return Ok(Box::new(StdoutWriter(tokio::io::stdout()))),
        };
        // A device or a pipe (`-o /dev/null`) is written in place: renaming a
        // temp file over it would replace the device with a regular file.
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .await
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            return Ok(Box::new(SpecialFileWriter { file, path }));
        }
        FileWriter::create(path).await.map(|w| Box::new(w) as Box<dyn OutputWriter>)
    }
}

struct FileWriter {
    file: tokio::fs::File,
    temp: tempfile::TempPath,
    path: PathBuf,
}

impl FileWriter {
    async fn create(path: PathBuf) -> Result<Self, String> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        // A file the user reads like any other: 0666 less the umask, as `cp`
        // makes it (tempfile's own default, 0600, is for secrets).
        let mut builder = tempfile::Builder::new();
        builder.prefix(".kiln-");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let named = builder.tempfile_in(&dir).map_err(|e| format!("creating a file in {}: {e}", dir.display()))?;
        let (file, temp) = named.into_parts();
        Ok(FileWriter { file: tokio::fs::File::from_std(file), temp, path })
    }
}

#[async_trait::async_trait]
impl OutputWriter for FileWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.file.write_all(&bytes).await.map_err(|e| format!("writing {}: {e}", self.path.display()))
    }

    async fn commit(mut self: Box<Self>) -> Result<String, String> {
        self.file.flush().await.map_err(|e| e.to_string())?;
        let path = self.path.clone();
        self.temp.persist(&path).map_err(|e| format!("renaming into {}: {e}", path.display()))?;
        Ok(path.display().to_string())
    }

    async fn abort(self: Box<Self>) {
        // Dropping the TempPath deletes the partial file.
    }
}

/// A device or pipe, written in place (nothing to take back on abort).
struct SpecialFileWriter {
    file: tokio::fs::File,
    path: PathBuf,
}

#[async_trait::async_trait]
impl OutputWriter for SpecialFileWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.file.write_all(&bytes).await.map_err(|e| format!("writing {}: {e}", self.path.display()))
    }
    async fn commit(mut self: Box<Self>) -> Result<String, String> {
        self.file.flush().await.map_err(|e| e.to_string())?;
        Ok(self.path.display().to_string())
    }
    async fn abort(self: Box<Self>) {}
}

struct StdoutWriter(tokio::io::Stdout);

#[async_trait::async_trait]
impl OutputWriter for StdoutWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.0.write_all(&bytes).await.map_err(|e| format!("writing to stdout: {e}"))
    }
    async fn commit(mut self: Box<Self>) -> Result<String, String> {
        self.0.flush().await.map_err(|e| e.to_string())?;
        Ok("-".into())
    }
    async fn abort(self: Box<Self>) {}
}
