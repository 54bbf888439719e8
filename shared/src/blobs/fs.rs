//! The filesystem adapter: each blob a file under one directory (by default
//! `blobs` in the data dir), for the embedded binary and single-host
//! deployments.
//!
//! Key `a/b` is the file `a/b.blob`. The suffix keeps files and
//! directories apart (key `a` is `a.blob`, beside the directory `a` that
//! `a/b` needs), and since keys have no `.`, the temporary files (named
//! `.<uuid>.tmp`) can never be a key's. A put writes its temporary file in
//! the blob's own directory, syncs it, renames it into place and syncs the
//! directory, so a crash leaves the old blob or the new one, never half.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::{BlobKey, BlobRead, Blobs, ByteStream, ServeHeaders};
use crate::error::{Error, Result};

/// The size of the chunks a blob is read in: enough for few system calls,
/// small enough that many downloads at once cost little memory.
const READ_CHUNK: usize = 64 * 1024;

/// Blobs as files under a directory.
#[derive(Debug, Clone)]
pub struct FsBlobs {
    /// The directory, absolute, that every blob's path must stay inside.
    root: PathBuf,
}

impl FsBlobs {
    /// Opens (creating it if missing) the directory `root`.
    pub async fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        tokio::fs::create_dir_all(root).await.map_err(|e| {
            Error::Io(io::Error::new(
                e.kind(),
                format!("creating the blob directory {}: {e}", root.display()),
            ))
        })?;
        Ok(Self {
            root: tokio::fs::canonicalize(root).await?,
        })
    }

    /// The file of `key`. [`BlobKey`] already refuses every key that could
    /// leave the directory; this checks it again on the path itself, so a
    /// change to the key rules cannot open a way out.
    fn path(&self, key: &BlobKey) -> Result<PathBuf> {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path.set_extension("blob");
        let inside = path
            .strip_prefix(&self.root)
            .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))));
        if inside {
            Ok(path)
        } else {
            Err(Error::Invalid(
                "a blob key must name a file inside the blob directory",
            ))
        }
    }
}

impl FsBlobs {
    /// Creates the directories from the root down to `dir` that are
    /// missing, syncing the parent of each new one: a blob acknowledged in
    /// a new directory must not vanish with it in a crash.
    async fn create_dirs(&self, dir: &Path) -> io::Result<()> {
        let below_root = dir
            .strip_prefix(&self.root)
            .expect("a blob's directory is inside the root");
        let mut current = self.root.clone();
        for part in below_root.components() {
            let parent = current.clone();
            current.push(part);
            match tokio::fs::create_dir(&current).await {
                Ok(()) => sync_dir(&parent).await?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Makes the entries of `dir` (a rename, a new directory) durable.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

/// A temporary file that is removed unless it was renamed into place, so a
/// put that fails or is cancelled leaves nothing behind.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            // Best effort: a file that cannot be removed is only litter,
            // never visible as a blob (its name is no key's).
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[async_trait]
impl Blobs for FsBlobs {
    async fn put(
        &self,
        key: &BlobKey,
        _headers: &ServeHeaders,
        mut body: ByteStream,
    ) -> Result<u64> {
        let path = self.path(key)?;
        let dir = path.parent().expect("a blob's path is inside the root");
        self.create_dirs(dir).await?;
        let mut temp = TempFile {
            path: dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple())),
            kept: false,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await?;
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            // The body's own error goes back as it came; `temp` removes
            // the partial file on the way out.
            let chunk = chunk?;
            file.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp.path, &path).await?;
        temp.kept = true;
        // The rename is durable only once the directory entry is.
        sync_dir(dir).await?;
        Ok(written)
    }

    async fn get(&self, key: &BlobKey) -> Result<BlobRead> {
        let file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        let body = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK)
            .map_ok(bytes::Bytes::from)
            .boxed();
        Ok(BlobRead { size, body })
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn exists(&self, key: &BlobKey) -> Result<bool> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn presign_get(
        &self,
        _key: &BlobKey,
        _expires_in: Duration,
        _headers: &ServeHeaders,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    async fn health(&self) -> Result<()> {
        let meta = tokio::fs::metadata(&self.root).await?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(Error::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!(
                    "the blob directory {} is not a directory",
                    self.root.display()
                ),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_key_maps_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobs::open(dir.path()).await.unwrap();
        let root = tokio::fs::canonicalize(dir.path()).await.unwrap();
        for key in ["a", "a/b", "attachments/0192/x-y"] {
            let path = blobs.path(&BlobKey::new(key).unwrap()).unwrap();
            assert!(path.starts_with(&root), "{key}: {}", path.display());
            assert_eq!(path.extension().unwrap(), "blob");
        }
        // Built around the key check, as a later change to it might allow.
        let hostile = BlobKey("../../etc/passwd".into());
        assert!(blobs.path(&hostile).is_err());
        let absolute = BlobKey("/etc/passwd".into());
        assert!(blobs.path(&absolute).unwrap().starts_with(&root));
    }
}
