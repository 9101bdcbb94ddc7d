//! The process's allocator: mimalloc instead of glibc's malloc (docs/performance.md,
//! "Allocation"), with its plain fast path for the alignments it already meets.

/// mimalloc instead of glibc's malloc: 12-23% fewer instructions per warm invocation for about
/// 0.15 MiB of binary (docs/performance.md, "Allocation").
#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// mimalloc, asked for plain blocks whenever a plain block is aligned enough. The `mimalloc`
/// crate passes every allocation to `mi_malloc_aligned`, and mimalloc 3 serves that from its
/// fast path only for small sizes: a block over 1 KiB whose size class is not a power of two
/// (an answer's buffer, a request's envelope) went through its generic over-allocating path,
/// ≈ 5,000 instructions per JSON-mode invocation (docs/performance.md).
struct Mimalloc;

/// Every block `mi_malloc` returns is aligned to 8 bytes at least: its size classes are
/// multiples of the word size, in pages whose first block is 16-byte aligned.
const PLAIN_ALIGN: usize = 8;

// SAFETY: plain blocks only for alignments they meet (PLAIN_ALIGN); everything else, freeing and
// resizing (`mi_realloc_aligned` takes its plain path for these alignments itself) as the crate
// does it. mimalloc frees a block whichever call made it.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}
