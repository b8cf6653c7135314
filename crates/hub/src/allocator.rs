//! The memory allocator's own account, where the binary can give one: how many bytes
//! the program has allocated and still holds, against how many the allocator keeps
//! resident for it. Their difference tells retention (freed memory not yet returned)
//! from live data when the process's resident size grows. The hub is a library and
//! does not pick the allocator: the binary that does installs a reader at start.

use std::sync::OnceLock;

/// One reading, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Held by the program: allocated and not yet freed.
    pub allocated: u64,
    /// In pages the allocator has resident (live data, its metadata, and freed memory
    /// it has not returned to the system yet).
    pub resident: u64,
}

static READER: OnceLock<fn() -> Option<AllocatorStats>> = OnceLock::new();

/// Install the allocator's reader (once; a second install is ignored).
pub fn install(reader: fn() -> Option<AllocatorStats>) {
    let _ = READER.set(reader);
}

/// The allocator's account now, if a reader is installed and it could answer.
pub fn read() -> Option<AllocatorStats> {
    READER.get().and_then(|r| r())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_read_until_a_reader_is_installed_then_its_answer() {
        assert_eq!(read(), None);
        install(|| {
            Some(AllocatorStats {
                allocated: 1,
                resident: 2,
            })
        });
        install(|| None);
        assert_eq!(
            read(),
            Some(AllocatorStats {
                allocated: 1,
                resident: 2
            }),
            "the first reader stays"
        );
    }
}
