//! A disk that fills up: the store's data directory on a size-limited
//! tmpfs, which a scenario fills to the last page with a ballast file while
//! the store runs, then grows, as an operator gives a full disk room.
//! Mounting needs root (the suite runs as root, as CI does).

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A tmpfs mounted for the suite; unmounted when dropped.
pub struct Tmpfs {
    path: PathBuf,
    size_mib: u64,
}

/// The file that takes the free space.
const BALLAST: &str = "ballast";

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB at `path` (which must exist).
    pub fn mount(path: &Path, size_mib: u64) -> Result<Self> {
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_mib}m"),
            "tmpfs",
            &path.display().to_string(),
        ])?;
        Ok(Self {
            path: path.to_owned(),
            size_mib,
        })
    }

    /// Writes a ballast file until the filesystem is full; returns how
    /// many bytes it took.
    pub fn fill(&self) -> Result<u64> {
        let file = self.path.join(BALLAST);
        let mut ballast = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        let mut written = 0;
        // Big chunks first, then pages, so not a page is left over.
        for chunk in [1 << 20, 4096] {
            let bytes = vec![0xa5u8; chunk];
            loop {
                match ballast.write_all(&bytes) {
                    Ok(()) => written += chunk as u64,
                    Err(e) if e.kind() == ErrorKind::StorageFull => break,
                    Err(e) => return Err(e).context("filling the store's tmpfs"),
                }
            }
        }
        Ok(written)
    }

    /// Gives the filesystem `more_mib` MiB more room (a remount: the files
    /// stay, the store keeps running).
    pub fn grow(&mut self, more_mib: u64) -> Result<()> {
        self.size_mib += more_mib;
        mount(&[
            "-o",
            &format!("remount,size={}m", self.size_mib),
            &self.path.display().to_string(),
        ])
    }

    /// Removes the ballast, so later scenarios run with room to spare.
    pub fn clear(&self) -> Result<()> {
        let file = self.path.join(BALLAST);
        match fs::remove_file(&file) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", file.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Tmpfs {
    /// Unmounts lazily: a process that still has a file open there (a store
    /// being killed) does not keep the mount alive for the next run.
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn mount(args: &[&str]) -> Result<()> {
    let output = Command::new("mount")
        .args(args)
        .output()
        .context("running mount (the storage scenarios need root)")?;
    if !output.status.success() {
        bail!(
            "mount {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
