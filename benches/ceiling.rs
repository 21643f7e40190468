//! The machine's ceiling, printed beside the server's figures: loopback TCP MB/s, disk write
//! MB/s with fdatasync (as `dd bs=1M count=1024 conv=fdatasync`), and CRC32C GB/s.
//!
//! Run: `cargo bench --bench ceiling [-- --dir /path/on/the/log.dirs/filesystem]` (default: the
//! temp dir). One line per figure; nothing here asserts a timing.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

const CHUNK: usize = 1024 * 1024;

/// One TCP stream over 127.0.0.1: a thread reads and discards, this one writes 1 MiB chunks.
fn loopback_tcp_mb_s(total: usize) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(n),
                k => n += k,
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    let buf = vec![7u8; CHUNK];
    let t = Instant::now();
    for _ in 0..total / CHUNK {
        s.write_all(&buf)?;
    }
    drop(s);
    let received = reader
        .join()
        .map_err(|_| std::io::Error::other("reader panicked"))??;
    let secs = t.elapsed().as_secs_f64();
    Ok(received as f64 / secs / 1e6)
}

/// Writes `total` bytes in 1 MiB writes, then fdatasync; the time includes the sync.
fn disk_write_mb_s(dir: &std::path::Path, total: usize) -> std::io::Result<f64> {
    let path = dir.join("kraftd-ceiling.tmp");
    let buf: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    let mut f = File::create(&path)?;
    for _ in 0..total / CHUNK {
        f.write_all(&buf)?;
    }
    f.sync_data()?;
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(total as f64 / secs / 1e6)
}

fn crc32c_gb_s(total: usize) -> f64 {
    let buf: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let t = Instant::now();
    let mut crc = 0u32;
    for _ in 0..total / CHUNK {
        crc = crc32c::crc32c_append(crc, std::hint::black_box(&buf));
    }
    std::hint::black_box(crc);
    total as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn best_of<F: FnMut() -> std::io::Result<f64>>(runs: usize, mut f: F) -> std::io::Result<f64> {
    let mut best = 0f64;
    for _ in 0..runs {
        best = best.max(f()?);
    }
    Ok(best)
}

fn main() {
    let dir = std::env::args()
        .skip_while(|a| a != "--dir")
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    match best_of(3, || loopback_tcp_mb_s(4 << 30)) {
        Ok(v) => {
            println!("loopback TCP, one stream, 1 MiB writes: {v:.0} MB/s (best of 3 x 4 GiB)")
        }
        Err(e) => println!("loopback TCP: {e}"),
    }
    match best_of(3, || disk_write_mb_s(&dir, 1 << 30)) {
        Ok(v) => println!(
            "disk write + fdatasync in {}: {v:.0} MB/s (best of 3 x 1 GiB, as dd bs=1M count=1024 conv=fdatasync)",
            dir.display()
        ),
        Err(e) => println!("disk write in {}: {e}", dir.display()),
    }
    let _ = crc32c_gb_s(256 << 20); // warm up
    println!(
        "CRC32C (crc32c crate, one core): {:.1} GB/s (4 GiB)",
        crc32c_gb_s(4 << 30)
    );
}
