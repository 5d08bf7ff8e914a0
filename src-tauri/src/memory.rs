//! Idle memory (Linux): once the tray app has had no window open for a few seconds, it tells
//! the kernel that the pages of its executable and libraries that start-up touched are not in
//! use, so they stop counting as the app's memory while it sits in the tray.
//!
//! The app links WebKitGTK, so ~190 libraries are mapped and relocated at start even though no
//! web view exists until a window opens: reading their symbol tables and relocations, and
//! start-up's code spread over the app's own text, leave ~60 MB of clean, file-backed pages
//! mapped (`RssFile`) that nothing uses while the app is idle. For each loaded ELF object
//! ([`libc::dl_iterate_phdr`]), every page of its non-writable `PT_LOAD` segments is advised
//! `MADV_COLD` (reclaim these first; Linux ≥ 5.4, ignored before) and then `MADV_DONTNEED`
//! (unmap them from this process). The pages stay in the page cache: when a window opens
//! they are mapped again by ordinary minor faults, and under memory pressure the kernel drops
//! them first.
//!
//! Why this is safe, and why not `MADV_PAGEOUT`:
//! - `MADV_DONTNEED` on a private file mapping discards the process's own copy of a page and
//!   maps the file's page again on the next access. For a page that was never written that
//!   copy *is* the file's page, so the contents cannot change: it is what reclaim does to
//!   clean file pages at any time. Only pages that cannot have been written are advised:
//!   segments without `PF_W`, not overlapping `PT_GNU_RELRO` (relocated, then made read-only),
//!   in objects without text relocations (`DT_TEXTREL`/`DF_TEXTREL`). The relocated data
//!   (GOT, `.data.rel.ro`, vtables) is anonymous memory and is never touched.
//! - The walk runs inside `dl_iterate_phdr`, which holds the dynamic loader's lock: no object
//!   can be unloaded, and its address range reused, while its segments are advised. (Parsing
//!   `/proc/self/maps` instead would race with another thread's `dlclose`/`munmap`, where
//!   `MADV_DONTNEED` on a range that became anonymous memory would zero it.)
//! - `MADV_PAGEOUT` would evict the pages from the page cache, but Linux only does that for
//!   files the caller owns or may write (`can_do_file_pageout`, against a side channel): for a
//!   normal user with libraries owned by root it skips them, so it worked only when run as root.
//!
//! Not advised: non-ELF file mappings (fonts, caches, locale data: other code maps and unmaps
//! them at will) and anything anonymous (heap, stacks, relocated data).
//!
//! With glibc, the same moment also calls `malloc_trim(0)`, which returns the free pages of the
//! allocator's arenas to the kernel: nothing at start-up, ~1 MB after a window was closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tauri::{AppHandle, Manager};

/// How long the app must have had no window open before it releases its idle pages.
const IDLE_AFTER: Duration = Duration::from_secs(5);

/// Bumped by each [`when_idle`]: only the latest request acts.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Releases the idle pages [`IDLE_AFTER`] from now if no window is open then (called once the
/// agent is up, and whenever a window is destroyed). Runs on a blocking thread; logs what it did.
pub fn when_idle(app: &AppHandle) {
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(IDLE_AFTER).await;
        if GENERATION.load(Ordering::Acquire) != generation || !app.webview_windows().is_empty() {
            return;
        }
        let _ = tauri::async_runtime::spawn_blocking(release_idle_pages).await;
    });
}

/// Releases the idle pages now and logs the RSS before and after.
#[cfg(target_os = "linux")]
fn release_idle_pages() {
    let before = linux::rss();
    let advised = linux::release_mapped_images();
    linux::trim_heap();
    let after = linux::rss();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    tracing::info!(
        "memory: idle with no window; {:.1} MB of library pages advised, heap trimmed, \
         RSS {:.1} → {:.1} MB (anon {:.1}, file {:.1})",
        mb(advised as u64),
        mb(before.total),
        mb(after.total),
        mb(after.anon),
        mb(after.file),
    );
}

/// Elsewhere there is nothing to do.
#[cfg(not(target_os = "linux"))]
fn release_idle_pages() {}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // FFI: dl_iterate_phdr and madvise (see the module's documentation)
mod linux {
    use std::ffi::{c_int, c_void};

    /// The process's resident memory, in bytes (`/proc/self/status`).
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Rss {
        pub total: u64,
        pub anon: u64,
        pub file: u64,
    }

    pub fn rss() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Rss {
            total: field("VmRSS:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        }
    }

    /// Returns the allocator's free pages to the kernel (glibc's `malloc_trim`).
    pub fn trim_heap() {
        // SAFETY: malloc_trim takes the allocator's own locks and only releases free memory.
        #[cfg(target_env = "gnu")]
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// The whole pages inside `[start, start + len)`, as (first page, length); None if none.
    pub fn inner_pages(start: usize, len: usize, page: usize) -> Option<(usize, usize)> {
        let end = start.checked_add(len)? & !(page - 1);
        let first = start.checked_add(page - 1)? & !(page - 1);
        (end > first).then(|| (first, end - first))
    }

    /// ELF dynamic-section tags (`<elf.h>`).
    const DT_NULL: isize = 0;
    const DT_TEXTREL: isize = 22;
    const DT_FLAGS: isize = 30;
    const DF_TEXTREL: usize = 0x4;
    const PT_GNU_RELRO: u32 = 0x6474_e552;

    /// `ElfW(Dyn)`: a signed tag and a word, both pointer-sized on Linux's ELF ABIs.
    #[repr(C)]
    struct Dyn {
        tag: isize,
        val: usize,
    }

    struct Walk {
        page: usize,
        vdso: usize,
        advised: usize,
    }

    /// Advises the never-written pages of every loaded object (see the module's
    /// documentation); returns how many bytes were advised `MADV_DONTNEED` successfully.
    pub fn release_mapped_images() -> usize {
        // SAFETY: sysconf and getauxval only read process constants.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        // SAFETY: as above; 0 when there is no vDSO.
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        let mut walk = Walk {
            page,
            vdso,
            advised: 0,
        };
        // SAFETY: the callback receives `walk` back as `data`, only for the duration of this
        // call, and reads the loader's own descriptions of the objects it is iterating.
        unsafe { libc::dl_iterate_phdr(Some(advise_object), (&raw mut walk).cast::<c_void>()) };
        walk.advised
    }

    /// True if the object's dynamic section asks for text relocations (its "read-only"
    /// segments were written at load time).
    ///
    /// # Safety
    /// `dynamic` must point to the object's mapped `PT_DYNAMIC` array, terminated by `DT_NULL`.
    unsafe fn has_textrel(mut dynamic: *const Dyn) -> bool {
        loop {
            // SAFETY: per the contract, every entry up to DT_NULL is mapped and readable.
            let d = unsafe { &*dynamic };
            match d.tag {
                DT_NULL => return false,
                DT_TEXTREL => return true,
                DT_FLAGS if d.val & DF_TEXTREL != 0 => return true,
                _ => {}
            }
            // SAFETY: not past DT_NULL yet.
            dynamic = unsafe { dynamic.add(1) };
        }
    }

    unsafe extern "C" fn advise_object(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `Walk` passed by release_mapped_images; `info` and its program
        // headers are the loader's, valid during this call, which holds the loader's lock.
        let (walk, info) = unsafe { (&mut *data.cast::<Walk>(), &*info) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers (see above).
        let phdrs =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr as usize;
        if let Some(d) = phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC) {
            let dynamic = base.wrapping_add(d.p_vaddr as usize) as *const Dyn;
            // SAFETY: a loaded object's PT_DYNAMIC is mapped at base + p_vaddr, DT_NULL-ended.
            if unsafe { has_textrel(dynamic) } {
                return 0;
            }
        }
        let relro: Vec<(usize, usize)> = phdrs
            .iter()
            .filter(|p| p.p_type == PT_GNU_RELRO)
            .map(|p| {
                let start = base.wrapping_add(p.p_vaddr as usize);
                (start, start.saturating_add(p.p_memsz as usize))
            })
            .collect();
        for p in phdrs {
            if p.p_type != libc::PT_LOAD || p.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = base.wrapping_add(p.p_vaddr as usize);
            let Some((first, len)) = inner_pages(start, p.p_filesz as usize, walk.page) else {
                continue;
            };
            let end = first + len;
            let overlaps = |(a, b): &(usize, usize)| *a < end && first < *b;
            if (first..end).contains(&walk.vdso) || relro.iter().any(overlaps) {
                continue;
            }
            let addr = first as *mut c_void;
            // SAFETY: [first, end) lies inside a mapped, never-written segment of an object the
            // loader keeps mapped while we hold its lock; MADV_COLD only ages pages, and
            // MADV_DONTNEED on such pages maps the file's (identical) pages again on access.
            // Errors (an old kernel without MADV_COLD, a locked range) leave things as they were.
            unsafe {
                libc::madvise(addr, len, libc::MADV_COLD);
                if libc::madvise(addr, len, libc::MADV_DONTNEED) == 0 {
                    walk.advised += len;
                }
            }
        }
        0
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn inner_pages_keeps_only_whole_pages() {
            assert_eq!(inner_pages(0x1000, 0x3000, 0x1000), Some((0x1000, 0x3000)));
            assert_eq!(inner_pages(0x1010, 0x3000, 0x1000), Some((0x2000, 0x2000)));
            assert_eq!(inner_pages(0x1010, 0xff0, 0x1000), None);
            assert_eq!(inner_pages(0x1800, 0x1000, 0x1000), None);
            assert_eq!(inner_pages(usize::MAX - 10, 100, 0x1000), None);
        }

        /// Read-only data (a literal, in a non-writable segment) and relocated data (a table of
        /// pointers, in RELRO) read the same after the release, and code still runs.
        #[test]
        fn release_keeps_contents_and_code_working() {
            static TABLE: [&str; 3] = ["alpha", "beta", "gamma"];
            const TEXT: &[u8] = b"a literal in .rodata, mapped read-only from the test binary";
            let sum = |b: &[u8]| {
                b.iter()
                    .fold(0u64, |a, &x| a.wrapping_mul(31).wrapping_add(u64::from(x)))
            };
            let before = (sum(TEXT), TABLE.join(","));
            let advised = release_mapped_images();
            trim_heap();
            assert!(advised > 0, "nothing was advised");
            assert_eq!((sum(TEXT), TABLE.join(",")), before);
            // Libraries' code and data work again after their pages were dropped.
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            assert!(status.contains("VmRSS:"));
            assert!(rss().total > 0);
            assert_eq!(format!("{:.2}", 1.0f64 / 3.0), "0.33");
        }
    }
}
