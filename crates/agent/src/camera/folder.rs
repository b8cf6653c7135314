//! A folder of JPEGs, cycled in name order: stands in for a camera with recorded
//! footage (demos, tests, replaying an incident).

use super::{Frame, FrameSource, SourceError};
use std::path::{Path, PathBuf};

pub struct Folder {
    files: Vec<PathBuf>,
    next: usize,
}

impl Folder {
    pub fn open(dir: &Path) -> Result<Self, SourceError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| SourceError::Config(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SourceError::Config(format!(
                "{}: no .jpg files",
                dir.display()
            )));
        }
        Ok(Folder { files, next: 0 })
    }
}

impl FrameSource for Folder {
    fn next_frame(&mut self, _now_ms: i64) -> Result<Frame, SourceError> {
        let path = self
            .files
            .get(self.next % self.files.len().max(1))
            .ok_or(SourceError::NotReady)?;
        self.next = self.next.wrapping_add(1);
        let jpeg =
            std::fs::read(path).map_err(|e| SourceError::Io(format!("{}: {e}", path.display())))?;
        Ok(Frame::new(jpeg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.jpg"), b"B").unwrap();
        std::fs::write(dir.path().join("a.JPEG"), b"A").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let mut f = Folder::open(dir.path()).unwrap();
        let got: Vec<Vec<u8>> = (0..3).map(|_| f.next_frame(0).unwrap().jpeg).collect();
        assert_eq!(got, vec![b"A".to_vec(), b"B".to_vec(), b"A".to_vec()]);
        let empty = tempfile::tempdir().unwrap();
        assert!(Folder::open(empty.path()).is_err());
    }
}
