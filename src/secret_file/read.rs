//! Bounded reads of secrets: at most a limit, into memory wiped on drop, grown without
//! leaving copies behind; and reading a secret file only when it is a regular file (looked
//! at before it is opened, and again once it is open), so a FIFO, a device or a huge file
//! can neither hang the tool nor fill its memory.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use zeroize::Zeroizing;

use super::{ReadError, mode_of};

/// Reads at most `limit` bytes from `reader` into memory that is wiped on drop.
///
/// Returns `None` when the input is longer than `limit`: the rest is not read.
///
/// # Errors
/// Whatever reading fails with.
pub fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    read_bounded_sized(reader, limit, 4096)
}

/// [`read_bounded`], starting with room for `expected` bytes: the buffer grows by copying
/// into a larger wiped buffer (a `Vec` growing in place would leave copies behind), and a
/// large `limit` costs nothing unless the input is that large.
fn read_bounded_sized(
    mut reader: impl Read,
    limit: usize,
    expected: usize,
) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let cap = limit.saturating_add(1);
    let mut buf = Zeroizing::new(vec![0u8; expected.saturating_add(1).clamp(1, cap)]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() == cap {
                break;
            }
            let mut bigger = Zeroizing::new(vec![0u8; buf.len().saturating_mul(2).min(cap)]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if len > limit {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// What [`read_secret_file`] found.
pub struct SecretFile {
    /// The file's content, or `None` when it is longer than the limit.
    pub contents: Option<Zeroizing<Vec<u8>>>,
    /// The file's permission bits (unix only).
    pub mode: Option<u32>,
}

/// Reads a file that holds a secret, at most `limit` bytes of it.
///
/// A symbolic link is followed (secret managers and Kubernetes mount secrets through
/// links), but what it leads to must be a regular file.
///
/// # Errors
/// [`ReadError`] when the file is missing, is not a regular file, or cannot be read.
pub fn read_secret_file(path: &Path, limit: usize) -> Result<SecretFile, ReadError> {
    let io_err = |error| ReadError::Io {
        path: path.to_owned(),
        error,
    };
    // Look before opening: opening a FIFO would block until someone writes to it.
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing {
            path: path.to_owned(),
        },
        _ => io_err(e),
    })?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_owned(),
        });
    }
    let file = File::open(path).map_err(io_err)?;
    // And look again at what was opened, in case the path changed in between.
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_owned(),
        });
    }
    let expected = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let contents = read_bounded_sized(&file, limit, expected).map_err(io_err)?;
    Ok(SecretFile {
        contents,
        mode: mode_of(&meta),
    })
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn read_grows_past_its_first_guess() {
        let data = vec![7u8; 10_000];
        let got = read_bounded_sized(&data[..], 20_000, 10).unwrap().unwrap();
        assert_eq!(&got[..], &data[..]);
        assert!(read_bounded_sized(&data[..], 9_999, 10).unwrap().is_none());
        assert_eq!(
            read_bounded_sized(&b""[..], 5, 0).unwrap().unwrap().len(),
            0
        );
    }

    #[test]
    fn read_is_bounded() {
        assert_eq!(
            read_bounded(&b"12345"[..], 5)
                .unwrap()
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"12345"[..])
        );
        assert!(read_bounded(&b"123456"[..], 5).unwrap().is_none());
        assert!(read_bounded(io::repeat(0), 4096).unwrap().is_none());
    }

    #[test]
    fn read_refuses_non_files() {
        let root = tempfile::tempdir().unwrap();
        let err = read_secret_file(root.path(), 10).err().unwrap();
        assert!(matches!(err, ReadError::NotAFile { .. }), "{err}");
        let err = read_secret_file(&root.path().join("none"), 10)
            .err()
            .unwrap();
        assert!(matches!(err, ReadError::Missing { .. }), "{err}");
        let err = read_secret_file(Path::new("/dev/zero"), 10).err().unwrap();
        assert!(matches!(err, ReadError::NotAFile { .. }), "{err}");
    }
}
