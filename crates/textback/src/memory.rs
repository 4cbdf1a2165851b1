//! What `textback` does about its allocators keeping memory the process freed: mimalloc
//! for Rust's allocations (see `main`), glibc's for SQLite's.

/// mimalloc's option numbers (`mi_option_e` in the mimalloc 3 that libmimalloc-sys builds;
/// the crate names only some of them).
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(target_os = "linux")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 3 by default commits its arenas up front on Linux and hands freed pages back a
/// second later; the resident set of `serve` at 1,000 missed calls/s was then 72–77 MB at
/// its peak against glibc's 42.6. Committed on demand and handed back at once it stayed at
/// glibc's level, with the speed kept (docs/PERFORMANCE.md, session 8). The first arena is
/// made by the first allocation, which Rust's start-up makes before `main`: so this runs as
/// one of the executable's initialisers, before Rust's start-up. The `MIMALLOC_*`
/// environment variables still override.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static HAND_BACK_FREED_MEMORY_AT_ONCE: extern "C" fn() = hand_back_freed_memory_at_once;

#[cfg(target_os = "linux")]
extern "C" fn hand_back_freed_memory_at_once() {
    for (option, env, value) in [
        (
            MI_OPTION_ARENA_EAGER_COMMIT,
            "MIMALLOC_ARENA_EAGER_COMMIT",
            0,
        ),
        (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0),
    ] {
        // Looking the name up allocates nothing unless it is set.
        if std::env::var_os(env).is_none() {
            // SAFETY: mi_option_set only stores the value mimalloc reads for that option.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}

/// How often `serve` hands freed memory back to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// glibc gives each thread that allocates under contention an arena of its own and keeps
/// what is freed in it (since session 8 only SQLite's and other C code's allocations are
/// glibc's); with the runtime's, SQLite's and sqlx's threads that held 5–20 MB
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
