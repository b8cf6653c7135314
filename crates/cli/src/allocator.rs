//! The binary's memory allocator: jemalloc, with its options built in, and its own
//! account of its memory for the hub's metrics and the benchmarks.

/// jemalloc rather than glibc's malloc, which kept freed memory in per-thread arenas:
/// the hub's RSS per camera and its growth over a soak (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`_RJEM_MALLOC_CONF` in the environment
/// still overrides them): freed pages go back to the system within about a second, by
/// a background thread, not at the next allocation in some request's path.
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// The C `const char *` jemalloc looks for.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points at a string literal, never written.
unsafe impl Sync for MallocConf {}

/// The C libraries (SQLite above all) still allocate through glibc's malloc, which
/// gives each thread that calls it an arena of its own and keeps freed memory in each:
/// one arena for all of them. The hub's memory outside jemalloc grew 5.3 MB in five
/// minutes at 3 000 cameras with glibc's default and 1.5 MB with one arena (RSS
/// +14.4 % and +4.4 %; `threshold bench liveness --cameras 3000 --hz 2 --duration
/// 300`, docs/performance.md, History 2026-12-05 evening). An operator's
/// `MALLOC_ARENA_MAX` is left as glibc read it.
pub fn one_c_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: sets one of glibc's malloc tunables; called first thing in `main`,
        // before any thread is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// jemalloc's statistics now (refreshed first: they are cached until the epoch moves).
pub fn stats() -> Option<threshold_hub::allocator::AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(threshold_hub::allocator::AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn jemalloc_accounts_for_what_this_program_holds() {
        let before = super::stats().expect("jemalloc answers");
        // 64 MiB held; other tests running meanwhile free far less than half of that.
        let held = std::hint::black_box(vec![7u8; 64 << 20]);
        let after = super::stats().expect("jemalloc answers");
        assert!(
            after.allocated >= before.allocated + (32 << 20),
            "{before:?} -> {after:?}"
        );
        assert!(after.resident >= after.allocated, "{after:?}");
        drop(held);
    }
}
