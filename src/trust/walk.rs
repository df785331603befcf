//! Resolving a path one name at a time, as the kernel does, recording every folder searched,
//! every link followed and the file it ends at, and the roots of Kubernetes volumes met.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

use super::PathKind;

/// How many symbolic links one path may go through, as Linux allows.
const MAX_LINKS: usize = 40;

/// One file, folder or link met while resolving the path, with its own metadata (not
/// followed).
pub(super) struct Step {
    pub(super) path: PathBuf,
    pub(super) kind: PathKind,
    pub(super) meta: Metadata,
}

/// Everything met while resolving a path, and where it stopped if it could not finish.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) steps: Vec<Step>,
    /// The folders that hold a `..data` entry: the roots of Kubernetes volumes.
    kubernetes_roots: Vec<PathBuf>,
}

/// Puts the names of `path` in front of those still to resolve, `..` included; `/`
/// and `.` name nothing.
fn push_front(pending: &mut VecDeque<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    for name in names.into_iter().rev() {
        pending.push_front(name);
    }
}

fn look(path: &Path) -> Result<Metadata, (PathBuf, io::Error)> {
    fs::symlink_metadata(path).map_err(|e| (path.to_owned(), e))
}

impl Walk {
    /// Resolves the absolute path `abs` as the kernel would, recording each folder
    /// searched, each link followed and the file it ends at.
    pub(super) fn run(&mut self, abs: &Path) -> Result<(), (PathBuf, io::Error)> {
        let root = PathBuf::from("/");
        let meta = look(&root)?;
        self.steps.push(Step {
            path: root.clone(),
            kind: PathKind::Folder,
            meta,
        });
        let mut pending = VecDeque::new();
        push_front(&mut pending, abs);
        // Always a real folder, reached without links: its `..` is its parent.
        let mut current = root.clone();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                current.pop();
                continue;
            }
            let candidate = current.join(&name);
            let meta = look(&candidate)?;
            if name == "..data" {
                self.kubernetes_roots.push(current.clone());
            }
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return Err((candidate, rustix::io::Errno::LOOP.into()));
                }
                let target = fs::read_link(&candidate).map_err(|e| (candidate.clone(), e))?;
                if target.as_os_str().is_empty() {
                    return Err((candidate, io::ErrorKind::NotFound.into()));
                }
                self.steps.push(Step {
                    path: candidate,
                    kind: PathKind::Link,
                    meta,
                });
                if target.has_root() {
                    current.clone_from(&root);
                }
                push_front(&mut pending, &target);
            } else if pending.is_empty() {
                self.steps.push(Step {
                    path: candidate,
                    kind: PathKind::File,
                    meta,
                });
                return Ok(());
            } else if meta.is_dir() {
                self.steps.push(Step {
                    path: candidate.clone(),
                    kind: PathKind::Folder,
                    meta,
                });
                current = candidate;
            } else {
                return Err((candidate, rustix::io::Errno::NOTDIR.into()));
            }
        }
        // The path (or the last link) ended in `..` or at `/`: it names the folder
        // reached, which is then judged as the file.
        let meta = look(&current)?;
        self.steps.push(Step {
            path: current,
            kind: PathKind::File,
            meta,
        });
        Ok(())
    }

    pub(super) fn in_kubernetes_volume(&self, path: &Path) -> bool {
        self.kubernetes_roots
            .iter()
            .any(|root| path.starts_with(root))
    }
}
