//! A policy that misbehaves on request, for the policy host's tests: the action's first
//! argument names the behaviour. Any other action is allowed, which makes the policy the
//! cheapest possible call for benchmarks.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicU32, Ordering};

use remex_policy_sdk::{ActionDescription, Decision, Policy};

/// Calls seen by this instance; the host gives every evaluation a fresh one, so it stays 1.
static CALLS: AtomicU32 = AtomicU32::new(0);

struct Hostile;

impl Policy for Hostile {
    fn evaluate(action: ActionDescription) -> Decision {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        match action.argv.first().map(String::as_str) {
            Some("loop") => endless_loop(),
            Some("alloc") => allocate_forever(),
            Some("trap") => panic!("trapping on request"),
            Some("deny") => Decision::Deny("denied on request".into()),
            Some("invalid-utf8") => Decision::Deny(invalid_utf8()),
            Some("long-reason") => Decision::Deny("x".repeat(1 << 20)),
            Some("escape") => Decision::Deny("red \u{1b}[31malert\u{1b}[0m\nsecond line".into()),
            // Allows from the second call on, which only an instance reused between
            // evaluations would ever reach.
            Some("flip") if calls > 1 => Decision::Allow,
            Some("flip") => Decision::Deny("first call".into()),
            _ => Decision::Allow,
        }
    }
}

fn endless_loop() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn allocate_forever() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Reserved, not filled: memory grows far faster than fuel burns.
        let mut block: Vec<u8> = Vec::with_capacity(1 << 20);
        block.push(1);
        blocks.push(black_box(block));
    }
}

#[allow(
    unsafe_code,
    reason = "the point is a `string` that is not UTF-8, which only unsafe code can make"
)]
fn invalid_utf8() -> String {
    // SAFETY: not sound as a Rust `String`; the bytes are only handed to the host, which must
    // reject them, and never read as text here.
    unsafe { String::from_utf8_unchecked(alloc::vec![0xff, 0xfe, 0x41]) }
}

remex_policy_sdk::export_policy!(Hostile, "hostile");
