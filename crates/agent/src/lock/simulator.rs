//! A simulated lock and door for the demo, tests and benchmarks: a bolt driven by a
//! motor that takes time and can jam, a door contact, and a battery. The
//! [`SimulatedHome`] handle is how a test (or the demo UI) plays the courier: open and
//! close the door, read the bolt. A door whose bolt is thrown cannot be opened, except
//! by [`SimulatedHome::force_door_open`] (a break-in).

use super::{BoltCommand, DriverEvent, DriverHandle, LockDriver};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use threshold_proto::body::{BoltState, DoorState};
use tokio::sync::{broadcast, mpsc, watch};

#[derive(Debug)]
struct SimState {
    bolt: BoltState,
    door: DoorState,
    jammed: bool,
    battery: u8,
    motor: Duration,
    /// Bumped per motor command so a superseded movement does not finish.
    generation: u64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<SimState>,
    events: broadcast::Sender<DriverEvent>,
    bolt_watch: watch::Sender<BoltState>,
}

/// Shared handle to one simulated door with its lock. Clones share the door.
#[derive(Clone, Debug)]
pub struct SimulatedHome {
    inner: Arc<Inner>,
}

impl Default for SimulatedHome {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedHome {
    /// Bolt thrown, door closed, battery 90 %, 100 ms motor.
    pub fn new() -> Self {
        Self::with_state(BoltState::Locked, DoorState::Closed)
    }

    pub fn with_state(bolt: BoltState, door: DoorState) -> Self {
        let (events, _) = broadcast::channel(256);
        SimulatedHome {
            inner: Arc::new(Inner {
                state: Mutex::new(SimState {
                    bolt,
                    door,
                    jammed: false,
                    battery: 90,
                    motor: Duration::from_millis(100),
                    generation: 0,
                }),
                events,
                bolt_watch: watch::channel(bolt).0,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        match self.inner.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn emit(&self, e: DriverEvent) {
        if let DriverEvent::Bolt(b) = e {
            self.inner.bolt_watch.send_replace(b);
        }
        let _ = self.inner.events.send(e);
    }

    pub fn set_motor_delay(&self, d: Duration) {
        self.with(|s| s.motor = d);
    }
    pub fn set_jammed(&self, jammed: bool) {
        self.with(|s| s.jammed = jammed);
    }
    pub fn set_battery(&self, pct: u8) {
        self.with(|s| s.battery = pct.min(100));
        self.emit(DriverEvent::Battery(pct.min(100)));
    }
    pub fn bolt(&self) -> BoltState {
        self.with(|s| s.bolt)
    }
    pub fn door(&self) -> DoorState {
        self.with(|s| s.door)
    }
    pub fn battery(&self) -> u8 {
        self.with(|s| s.battery)
    }

    /// Open the door as a person would: only possible with the bolt retracted.
    pub fn open_door(&self) -> bool {
        let ok = self.with(|s| {
            if s.bolt == BoltState::Unlocked && s.door == DoorState::Closed {
                s.door = DoorState::Open;
                true
            } else {
                false
            }
        });
        if ok {
            self.emit(DriverEvent::Door(DoorState::Open));
        }
        ok
    }

    /// Open the door whatever the bolt says (forced entry, or a lock that lies).
    pub fn force_door_open(&self) {
        let changed =
            self.with(|s| std::mem::replace(&mut s.door, DoorState::Open) != DoorState::Open);
        if changed {
            self.emit(DriverEvent::Door(DoorState::Open));
        }
    }

    pub fn close_door(&self) {
        let changed =
            self.with(|s| std::mem::replace(&mut s.door, DoorState::Closed) != DoorState::Closed);
        if changed {
            self.emit(DriverEvent::Door(DoorState::Closed));
        }
    }

    /// Wait (event-driven, no polling) until the bolt reports `want`.
    pub async fn wait_bolt(&self, want: BoltState, timeout: Duration) -> bool {
        let mut rx = self.inner.bolt_watch.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|b| *b == want))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Drive the motor (needs a tokio runtime).
    pub fn command(&self, cmd: BoltCommand) {
        let target = match cmd {
            BoltCommand::Lock => BoltState::Locked,
            BoltCommand::Unlock => BoltState::Unlocked,
        };
        let (generation, motor) = self.with(|s| {
            s.generation += 1;
            s.bolt = BoltState::Moving;
            (s.generation, s.motor)
        });
        self.emit(DriverEvent::Bolt(BoltState::Moving));
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(motor).await;
            let done = me.with(|s| {
                if s.generation != generation {
                    return None;
                }
                s.bolt = if s.jammed { BoltState::Jammed } else { target };
                Some(s.bolt)
            });
            if let Some(b) = done {
                me.emit(DriverEvent::Bolt(b));
            }
        });
    }

    /// A driver for the lock agent (bolt, door, battery).
    pub fn lock_driver(&self) -> SimDriver {
        SimDriver {
            home: self.clone(),
            door_only: false,
        }
    }

    /// A driver for a separate contact-sensor agent (door, battery).
    pub fn contact_driver(&self) -> SimDriver {
        SimDriver {
            home: self.clone(),
            door_only: true,
        }
    }
}

pub struct SimDriver {
    home: SimulatedHome,
    door_only: bool,
}

impl LockDriver for SimDriver {
    fn start(self: Box<Self>) -> DriverHandle {
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<BoltCommand>(16);
        let home = self.home;
        let door_only = self.door_only;
        let mut sub = home.inner.events.subscribe();
        let task = tokio::spawn(async move {
            let (bolt, door, battery) = home.with(|s| (s.bolt, s.door, s.battery));
            let mut initial = vec![
                DriverEvent::Available(true),
                DriverEvent::Door(door),
                DriverEvent::Battery(battery),
            ];
            if !door_only {
                initial.insert(1, DriverEvent::Bolt(bolt));
            }
            for e in initial {
                if ev_tx.send(e).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    e = sub.recv() => match e {
                        Ok(e) => {
                            if door_only && matches!(e, DriverEvent::Bolt(_)) {
                                continue;
                            }
                            if ev_tx.send(e).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Resynchronise with the current state.
                            let (bolt, door) = home.with(|s| (s.bolt, s.door));
                            if !door_only {
                                let _ = ev_tx.send(DriverEvent::Bolt(bolt)).await;
                            }
                            let _ = ev_tx.send(DriverEvent::Door(door)).await;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    c = cmd_rx.recv() => match c {
                        Some(c) if !door_only => home.command(c),
                        Some(_) => {}
                        None => return,
                    },
                }
            }
        });
        DriverHandle::new(ev_rx, cmd_tx, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn motor_door_and_jam() {
        let home = SimulatedHome::new();
        home.set_motor_delay(Duration::from_millis(10));
        let mut d = Box::new(home.lock_driver()).start();
        assert_eq!(d.events.recv().await, Some(DriverEvent::Available(true)));
        assert_eq!(
            d.events.recv().await,
            Some(DriverEvent::Bolt(BoltState::Locked))
        );
        assert_eq!(
            d.events.recv().await,
            Some(DriverEvent::Door(DoorState::Closed))
        );
        assert_eq!(d.events.recv().await, Some(DriverEvent::Battery(90)));
        assert!(!home.open_door(), "cannot open a locked door");
        d.commands.send(BoltCommand::Unlock).await.unwrap();
        assert_eq!(
            d.events.recv().await,
            Some(DriverEvent::Bolt(BoltState::Moving))
        );
        assert_eq!(
            d.events.recv().await,
            Some(DriverEvent::Bolt(BoltState::Unlocked))
        );
        assert!(home.open_door());
        assert_eq!(
            d.events.recv().await,
            Some(DriverEvent::Door(DoorState::Open))
        );
        home.close_door();
        assert_eq!(
            d.events.recv().await,
            Some(DriverEvent::Door(DoorState::Closed))
        );
        home.set_jammed(true);
        d.commands.send(BoltCommand::Lock).await.unwrap();
        assert!(
            home.wait_bolt(BoltState::Jammed, Duration::from_secs(2))
                .await
        );
    }
}
