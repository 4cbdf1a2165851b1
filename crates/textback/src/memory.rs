//! What `textback` does about glibc's allocator, which keeps memory the process freed.

/// How often `serve` hands freed memory back to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// glibc gives each thread that allocates under contention an arena of its own and keeps
/// what is freed in it; with the runtime's, SQLite's and sqlx's threads that held 5–20 MB
/// more resident memory under load than two arenas do (measured: 67.9 -> 62.5 MB peak at
/// 1,000 missed calls/s). Set before any thread starts; `MALLOC_ARENA_MAX` still overrides.
pub(crate) fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator settings; it is called on the main thread
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Under steady load freed memory is scattered between blocks still in use, and glibc
/// returns to the system only the free memory at the top of its heaps: after 30 s at
/// 1,000 missed calls/s the resident set was 71 MB while 28 MB was in use, and one
/// `malloc_trim` brought it to 53 MB. So a thread of its own trims every second (each trim
/// took 0.5–0.9 ms at that load), and memory freed after a burst goes back within one.
pub(crate) fn return_freed_memory_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_EVERY);
                    // SAFETY: malloc_trim only releases free pages; glibc locks each arena
                    // while it does.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "the malloc-trim thread did not start; memory freed under load stays resident");
        }
    }
}
