//! File regions under a read lease (src/mapped.rs): the bytes stay what they were when mapped
//! whatever happens to the file, one lease per file, released with its last mapping, and a
//! read in place of a mapping where no lease can be had. The tests count leases of the whole
//! process, so they take turns (TURN).
#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use emily::mapped::{self, Region};

static TURN: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

fn file_with(tag: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("emily_mapped_{tag}_{}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
}

fn is_mapped(r: &Region) -> bool {
    matches!(r, Region::Mapped(_))
}

#[test]
fn a_truncation_waits_for_the_copy_and_the_bytes_stay() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = pattern(4 * MIB);
    let path = file_with("truncate", &bytes);
    let before = mapped::stats();
    // two regions of one file (as a weights file's tensors), one not page-aligned
    let a = mapped::open(&path, 0, 2 * MIB).unwrap();
    let b = mapped::open(&path, 4096 + 8, MIB).unwrap();
    assert!(is_mapped(&a) && is_mapped(&b));
    assert_eq!(mapped::stats().leased_files, before.leased_files + 1);
    assert_eq!(mapped::stats().mappings, before.mappings + 2);
    // readers running through the copy see the same bytes throughout
    let stop = std::sync::atomic::AtomicBool::new(false);
    let reading = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(a.as_ref(), &bytes[..2 * MIB]);
                reads += 1;
                reading.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            reads
        });
        // (on a loaded machine the reader may start late: truncate once it reads)
        while !reading.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::yield_now();
        }
        // this process truncates it: the open waits until the watcher has copied
        std::fs::File::create(&path).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(a.as_ref(), &bytes[..2 * MIB]);
    assert_eq!(b.as_ref(), &bytes[4096 + 8..4096 + 8 + MIB]);
    let after = mapped::stats();
    assert_eq!(after.leased_files, before.leased_files);
    assert_eq!(after.mappings, before.mappings);
    // what was copied: each mapping from its first page
    assert_eq!(after.copied_on_change - before.copied_on_change, (2 * MIB + 8 + MIB) as u64);
    drop((a, b));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_rewrite_in_place_leaves_the_mapping_as_it_was() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = pattern(MIB);
    let path = file_with("rewrite", &bytes);
    let a = mapped::open(&path, 0, MIB).unwrap();
    assert!(is_mapped(&a));
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&vec![0u8; MIB]).unwrap();
    drop(f);
    assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; MIB]);
    assert_eq!(a.as_ref(), &bytes[..]);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_lease_goes_with_the_last_mapping_and_comes_back_with_a_new_one() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let path = file_with("release", &pattern(64 * 1024));
    let before = mapped::stats();
    let a = mapped::open(&path, 0, 4096).unwrap();
    let b = mapped::open(&path, 4096, 4096).unwrap();
    drop(a);
    assert_eq!(mapped::stats().leased_files, before.leased_files + 1);
    drop(b);
    assert_eq!(mapped::stats().leased_files, before.leased_files);
    assert_eq!(mapped::stats().mappings, before.mappings);
    // with no lease left, a writer does not wait and nothing is copied
    std::fs::write(&path, pattern(64 * 1024)).unwrap();
    assert_eq!(mapped::stats().copied_on_change, before.copied_on_change);
    let c = mapped::open(&path, 0, 4096).unwrap();
    assert!(is_mapped(&c));
    assert_eq!(mapped::stats().leased_files, before.leased_files + 1);
    drop(c);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_file_open_for_writing_is_read_instead() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = pattern(MIB);
    let path = file_with("writer", &bytes);
    let writer = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let before = mapped::stats();
    let a = mapped::open(&path, 8, MIB - 8).unwrap();
    assert!(!is_mapped(&a));
    assert_eq!(mapped::stats().read_unleased - before.read_unleased, (MIB - 8) as u64);
    assert_eq!(mapped::stats().leased_files, before.leased_files);
    writer.set_len(0).unwrap();
    assert_eq!(a.as_ref(), &bytes[8..]);
    drop(writer);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_regions_are_argument_errors() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let path = file_with("bad", &[1, 2, 3, 4]);
    let msg = |r: emily::Result<Region>| r.err().expect("an error").to_string();
    assert!(msg(mapped::open(&path, 2, 3)).contains("the file has 4 bytes; the region needs 3 bytes from 2"));
    assert!(msg(mapped::open(&path, u64::MAX, 1)).contains("the file has 4 bytes"));
    assert!(msg(mapped::open(&std::env::temp_dir(), 0, 1)).contains("not a regular file"));
    assert!(msg(mapped::open(&path.with_extension("missing"), 0, 1)).contains("cannot open the file"));
    assert!(mapped::open(&path, 4, 0).unwrap().as_ref().is_empty());
    assert_eq!(mapped::stats().leased_files, 0);
    std::fs::remove_file(&path).unwrap();
}
