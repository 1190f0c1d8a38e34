//! The C library's malloc thresholds (`emily::memory::tune_malloc`). One test: the settings
//! are process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn tuned_malloc_serves_large_blocks_from_the_heap_instead_of_fresh_mappings() {
    use emily::memory::{malloc_mmap_threshold, tune_malloc, MALLOC_MMAP_THRESHOLD_MAX};
    use emily::{Array, Dtype};
    use std::ffi::c_int;

    // glibc's mallinfo2 (2.33+): `hblks` counts the blocks served by their own mmap.
    #[repr(C)]
    #[derive(Default)]
    struct MallInfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    extern "C" {
        fn mallinfo2() -> MallInfo2;
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_TOP_PAD: c_int = -2;
    let mapped = || unsafe { mallinfo2() }.hblks;
    let array_of = |bytes: usize| Array::from_bytes(&vec![1u8; bytes], &[bytes as i64], Dtype::U8).unwrap();

    // What the BEAM does at start: any of these fixes glibc's mmap threshold at 128 KiB.
    assert_eq!(unsafe { mallopt(M_TRIM_THRESHOLD, 128 << 10) }, 1);
    assert_eq!(unsafe { mallopt(M_TOP_PAD, 0) }, 1);
    let before = mapped();
    let a = array_of((1 << 20) + 4096);
    assert!(mapped() > before, "a 1 MiB block should have been mapped on its own");
    drop(a);

    assert!(!tune_malloc(0));
    assert!(!tune_malloc(MALLOC_MMAP_THRESHOLD_MAX + 1));
    assert_eq!(malloc_mmap_threshold(), None);
    assert!(tune_malloc(MALLOC_MMAP_THRESHOLD_MAX));
    assert_eq!(malloc_mmap_threshold(), Some(MALLOC_MMAP_THRESHOLD_MAX));

    // Sizes MLX's buffer cache has not seen: each is a new malloc.
    let before = mapped();
    let held: Vec<Array> = (1..=4).map(|i| array_of((1 << 20) + i * 8192)).collect();
    assert_eq!(mapped(), before, "blocks under the threshold should come from the heap");
    drop(held);
    // 32 MiB and more are still mapped on their own.
    let big = array_of(MALLOC_MMAP_THRESHOLD_MAX + 4096);
    assert!(mapped() > before);
    drop(big);
    emily::memory::clear_cache();
}
