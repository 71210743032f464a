//! Reading a whole small file that the user named or that was found in a root: never a hang,
//! never an unbounded read.
//!
//! A path may name a FIFO (an open for reading blocks until a writer comes, a read until it
//! closes), a character device (`/dev/zero` never ends), or a sparse file of many gigabytes.
//! [`read_bounded`] opens with `O_NONBLOCK`, so that opening a FIFO returns at once, then
//! `fstat`s the descriptor it opened (not the path, which could be swapped in between) and
//! refuses anything but a regular file. It reads at most `max + 1` bytes, so a file that grows
//! while it is read is refused too. Depends on nothing else of the crate: every reader of
//! user files (`cert`, `pki`, `inventory`, and the CLI's `--devices` and `pki show`) uses it and
//! keeps its own error type.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

/// The most a certificate or key file is read: a bundle of a thousand certificates is ~2 MB,
/// so anything bigger is not one.
pub const MAX_CERT_FILE: u64 = 16 << 20;

/// Whether the last component of the path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it, as `cat` does: a file the user named may be a link.
    Follow,
    /// Refuse it (`O_NOFOLLOW`: the open fails with `ELOOP`), for files inside a root that
    /// must not lead out of it.
    Refuse,
}

/// The bytes of the regular file at `path`, at most `max` of them.
///
/// Errors are `std::io::Error`s without the path (callers name the file in their own error
/// type): the open's own error; `InvalidInput` "is a FIFO, not a file" (or a character device,
/// block device, socket, folder) for what is not a regular file; `FileTooLarge` for a file of
/// more than `max` bytes, by its size or by what could be read.
pub fn read_bounded(path: &Path, max: u64, links: Links) -> io::Result<Vec<u8>> {
    let mut flags = OFlags::NONBLOCK | OFlags::CLOEXEC;
    if links == Links::Refuse {
        flags |= OFlags::NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    let ty = meta.file_type();
    if !ty.is_file() {
        let what = if ty.is_fifo() {
            "a FIFO"
        } else if ty.is_char_device() {
            "a character device"
        } else if ty.is_block_device() {
            "a block device"
        } else if ty.is_socket() {
            "a socket"
        } else if ty.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a file"),
        ));
    }
    if meta.len() > max {
        return Err(too_large(&meta.len().to_string(), max));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    // The size was read before the bytes: a file that grows meanwhile stops at max + 1.
    (&file as &File).take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large(&format!("more than {max}"), max));
    }
    Ok(out)
}

/// [`read_bounded`] as UTF-8 text; bytes that are not UTF-8 are `InvalidData`, saying at
/// which line (from 1).
pub fn read_text_bounded(path: &Path, max: u64, links: Links) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max, links)?).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {line} is not UTF-8 text (byte 0x{:02x})", bytes[at]),
        )
    })
}

fn too_large(size: &str, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("{size} bytes is too large (at most {max} are read)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reads_a_regular_file_up_to_its_limit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_bounded(&p, 5, Links::Follow).unwrap(), b"12345");
        let e = read_bounded(&p, 4, Links::Follow).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("5 bytes is too large"), "{e}");
    }

    #[test]
    fn refuses_a_fifo_at_once_and_a_character_device() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo.pem");
        let ok = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap();
        assert!(ok.success());
        let t = Instant::now();
        let e = read_bounded(&p, 1 << 20, Links::Follow).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(e.to_string(), "is a FIFO, not a file");
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20, Links::Follow).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a file");
        let e = read_bounded(d.path(), 1 << 20, Links::Follow).unwrap_err();
        assert_eq!(e.to_string(), "is a folder, not a file");
    }

    #[test]
    fn follows_a_link_only_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert_eq!(read_bounded(&l, 1, Links::Follow).unwrap(), b"x");
        let e = read_bounded(&l, 1, Links::Refuse).unwrap_err();
        assert_eq!(
            rustix::io::Errno::from_io_error(&e),
            Some(rustix::io::Errno::LOOP)
        );
    }

    #[test]
    fn text_that_is_not_utf8_names_its_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("devices.csv");
        std::fs::write(&p, b"a,b\nftd1,127.0.0.1,admin,\xff\xfe\n").unwrap();
        let e = read_text_bounded(&p, 1 << 20, Links::Follow).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "line 2 is not UTF-8 text (byte 0xff)");
    }
}
