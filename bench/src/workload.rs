//! Generated inputs: files whose contents are distinct per seed, written fast.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

const MIB: usize = 1024 * 1024;

/// A MiB of pseudo-random bytes (xorshift), the same for the same seed.
pub fn noise(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(MIB);
    while bytes.len() < MIB {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes
}

/// Writes `size` bytes to `path`, each MiB stamped with `seed` and its index so that no two
/// MiB of any generated file are equal.
pub fn write_file(path: &Path, size: u64, seed: u64, noise: &[u8]) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(MIB, File::create(path)?);
    let mut chunk = noise.to_vec();
    let mut left = size;
    let mut index = 0u64;
    while left > 0 {
        chunk[..8].copy_from_slice(&seed.to_le_bytes());
        chunk[8..16].copy_from_slice(&index.to_le_bytes());
        let n = left.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n])?;
        left -= n as u64;
        index += 1;
    }
    out.flush()
}

/// `count` files of 1 KiB, 100 to a directory, each distinct.
pub fn write_small_files(root: &Path, count: usize, seed: u64) -> std::io::Result<()> {
    let noise = noise(seed);
    for i in 0..count {
        let dir = root.join(format!("d{:04}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir)?;
        }
        let mut bytes = noise[(i % 1000) * 1024..][..1024].to_vec();
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        bytes[8..16].copy_from_slice(&seed.to_le_bytes());
        fs::write(dir.join(format!("f{i}.txt")), bytes)?;
    }
    Ok(())
}
