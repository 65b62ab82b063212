//! Fake clocks for plugins. A plan must depend only on its inputs, so a plugin sees no real
//! time: both clocks start at a fixed point and move only when the plugin sleeps, which returns
//! at once. This also means a sleeping plugin cannot hold the host's thread past its deadline
//! (the epoch deadline interrupts WebAssembly code, not a host call that is waiting).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// What a plugin's wall clock reads before it sleeps: 2000-01-01T00:00:00Z.
pub const FAKE_WALL_CLOCK_START: Duration = Duration::from_secs(946_684_800);

/// Nanoseconds of fake time elapsed in one call, shared by both clocks.
#[derive(Clone, Default)]
pub(crate) struct FakeTime {
    elapsed_ns: Arc<AtomicU64>,
}

impl FakeTime {
    fn now(&self) -> u64 {
        self.elapsed_ns.load(Ordering::Relaxed)
    }

    fn advance_to(&self, instant_ns: u64) {
        self.elapsed_ns.fetch_max(instant_ns, Ordering::Relaxed);
    }

    fn advance_by(&self, duration_ns: u64) {
        let now = self.now();
        self.advance_to(now.saturating_add(duration_ns));
    }
}

impl HostWallClock for FakeTime {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        FAKE_WALL_CLOCK_START + Duration::from_nanos(FakeTime::now(self))
    }
}

impl HostMonotonicClock for FakeTime {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        FakeTime::now(self)
    }
}

/// Replaces wasmtime-wasi's `wasi:clocks/monotonic-clock`, whose sleeps wait in real time.
pub(crate) struct FakeMonotonicClock;

impl HasData for FakeMonotonicClock {
    type Data<'a> = FakeMonotonicClockView<'a>;
}

pub(crate) struct FakeMonotonicClockView<'a> {
    pub(crate) time: &'a FakeTime,
    pub(crate) table: &'a mut ResourceTable,
}

impl monotonic_clock::Host for FakeMonotonicClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.time.now())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.time.advance_to(when);
        elapsed(self.table)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.time.advance_by(duration);
        elapsed(self.table)
    }
}

/// A pollable that is ready at once: the fake time it waited for has already passed.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

fn elapsed(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
    let resource = table.push(Elapsed)?;
    subscribe(table, resource)
}
