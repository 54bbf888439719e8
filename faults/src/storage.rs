//! The store's disk, as scenarios break it: an ext4 filesystem in an image
//! file on `/dev/shm` (so an fsync costs what it would on a fast disk, not
//! what the host's costs), attached to a loop device and mounted at the
//! store's data directory with `errors=remount-ro`, as a production data
//! disk would be. A scenario fills it to the last block with a ballast file
//! and then frees some of it, or turns it read-only the way the kernel does when
//! the filesystem meets an error, then repairs it as an operator must:
//! with the store stopped, unmount, `e2fsck`, mount.
//!
//! Why not a tmpfs remounted read-only: Linux refuses to make a mount
//! read-only while any file on it is open for writing (`EBUSY`), which a
//! running store always has; and a filesystem the kernel turned read-only
//! after an error stays so until it is unmounted.
//!
//! All of it needs root (the suite runs as root, as CI does).

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A loop-mounted ext4 filesystem made for the suite; unmounted, detached
/// and deleted when dropped.
pub struct Disk {
    image: PathBuf,
    device: String,
    mount: PathBuf,
}

/// The file that takes the free space.
const BALLAST: &str = "ballast";

impl Disk {
    /// Makes a filesystem of `size_mib` MiB and mounts it at `mount`
    /// (which must exist). No blocks are reserved for root, so the
    /// ballast and the store run out of room together.
    pub fn mount(mount: &Path, size_mib: u64) -> Result<Self> {
        let name = mount.file_name().and_then(|n| n.to_str()).unwrap_or("disk");
        let image = PathBuf::from(format!(
            "/dev/shm/chat-faults-{}-{name}.img",
            std::process::id()
        ));
        fs::File::create(&image)
            .and_then(|f| f.set_len(size_mib << 20))
            .with_context(|| format!("creating {}", image.display()))?;
        run(
            "mkfs.ext4",
            &["-q", "-F", "-m", "0", &image.display().to_string()],
        )?;
        let device = run(
            "losetup",
            &["--find", "--show", &image.display().to_string()],
        )?;
        let disk = Self {
            image,
            device,
            mount: mount.to_owned(),
        };
        disk.attach()?;
        Ok(disk)
    }

    fn attach(&self) -> Result<()> {
        run(
            "mount",
            &[
                "-o",
                "errors=remount-ro",
                &self.device,
                &self.mount.display().to_string(),
            ],
        )
        .map(drop)
    }

    /// Writes a ballast file until the filesystem is full; returns how
    /// many bytes it took.
    pub fn fill(&self) -> Result<u64> {
        let file = self.mount.join(BALLAST);
        let mut ballast = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        let mut written = 0;
        // Big chunks first, then blocks, so not a block is left over.
        for chunk in [1 << 20, 4096] {
            let bytes = vec![0xa5u8; chunk];
            loop {
                match ballast.write_all(&bytes).and_then(|()| ballast.sync_data()) {
                    Ok(()) => written += chunk as u64,
                    Err(e) if e.kind() == ErrorKind::StorageFull => break,
                    Err(e) => return Err(e).context("filling the store's disk"),
                }
            }
        }
        Ok(written)
    }

    /// Gives the store `mib` MiB of room again while it runs, as an
    /// operator who deletes old files does: the ballast shrinks. (Growing
    /// the mounted filesystem instead, with `resize2fs`, needs
    /// `CAP_SYS_RESOURCE`, which a container's root may lack.)
    pub fn free(&self, mib: u64) -> Result<()> {
        let file = self.mount.join(BALLAST);
        let ballast = fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .with_context(|| format!("opening {}", file.display()))?;
        let size = ballast.metadata()?.len();
        ballast
            .set_len(size.saturating_sub(mib << 20))
            .and_then(|()| ballast.sync_all())
            .with_context(|| format!("shrinking {}", file.display()))
    }

    /// Removes the ballast, so later scenarios run with room to spare.
    pub fn clear(&self) -> Result<()> {
        let file = self.mount.join(BALLAST);
        match fs::remove_file(&file) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", file.display()))
            }
            _ => Ok(()),
        }
    }

    /// Makes the filesystem meet an error, as a failing disk would: with
    /// `errors=remount-ro` the kernel turns it read-only at once, open
    /// files and all, and every write after fails with `EROFS`.
    pub fn break_read_only(&self) -> Result<()> {
        let loop_name = Path::new(&self.device)
            .file_name()
            .and_then(|n| n.to_str())
            .context("loop device name")?;
        let trigger = format!("/sys/fs/ext4/{loop_name}/trigger_fs_error");
        fs::write(&trigger, "chat-faults: read-only storage")
            .with_context(|| format!("writing {trigger}"))
    }

    /// The operator's repair of a filesystem the kernel made read-only:
    /// unmount (every process with a file open there must have stopped),
    /// check, mount again.
    pub fn repair(&self) -> Result<()> {
        run("umount", &[&self.mount.display().to_string()])?;
        // e2fsck exits 1 when it fixed something, which it does here.
        let status = Command::new("e2fsck")
            .args(["-f", "-y", &self.device])
            .output()
            .context("running e2fsck")?
            .status;
        if !matches!(status.code(), Some(0 | 1)) {
            bail!("e2fsck {} failed ({status})", self.device);
        }
        self.attach()
    }
}

impl Drop for Disk {
    /// Unmounts lazily (a store being killed may still hold a file there),
    /// detaches the loop device and deletes the image.
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        let _ = fs::remove_file(&self.image);
    }
}

/// Runs a system tool, failing with what it printed; returns its stdout.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (the storage scenarios need root)"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
