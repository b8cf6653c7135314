//! A simulated garage door and opener for the demo and tests: a door that takes
//! `travel` to open or close, a photo-eye that can be blocked (a door closing onto an
//! obstruction reverses and stops open, as real openers do), and the wall button.
//! [`SimulatedGarage`] is the handle a test (or the demo) uses to play the world.

use super::{OpenerCommand, OpenerDriver, OpenerEvent, OpenerHandle, Position};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

#[derive(Debug)]
struct GarageState {
    position: Position,
    obstructed: bool,
    travel: Duration,
    /// Bumped per movement so a superseded movement does not finish.
    generation: u64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<GarageState>,
    events: broadcast::Sender<OpenerEvent>,
    position_watch: watch::Sender<Position>,
}

/// Shared handle to one simulated garage door. Clones share the door.
#[derive(Clone, Debug)]
pub struct SimulatedGarage {
    inner: Arc<Inner>,
}

impl Default for SimulatedGarage {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedGarage {
    /// Closed, photo-eye clear, 200 ms of travel.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(256);
        SimulatedGarage {
            inner: Arc::new(Inner {
                state: Mutex::new(GarageState {
                    position: Position::Closed,
                    obstructed: false,
                    travel: Duration::from_millis(200),
                    generation: 0,
                }),
                events,
                position_watch: watch::channel(Position::Closed).0,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut GarageState) -> R) -> R {
        match self.inner.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn emit(&self, e: OpenerEvent) {
        if let OpenerEvent::Position(p) = e {
            self.inner.position_watch.send_replace(p);
        }
        let _ = self.inner.events.send(e);
    }

    pub fn set_travel(&self, d: Duration) {
        self.with(|s| s.travel = d);
    }

    pub fn position(&self) -> Position {
        self.with(|s| s.position)
    }

    /// Something (a parcel, a person) blocks the photo-eye, or is taken away.
    pub fn set_obstructed(&self, obstructed: bool) {
        let changed = self.with(|s| std::mem::replace(&mut s.obstructed, obstructed) != obstructed);
        if changed {
            self.emit(OpenerEvent::Obstructed(obstructed));
        }
    }

    /// Wait (event-driven) until the door is at `want`.
    pub async fn wait_position(&self, want: Position, timeout: Duration) -> bool {
        let mut rx = self.inner.position_watch.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p == want))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Drive the door (needs a tokio runtime). Closing onto an obstruction reverses:
    /// the door goes back up and stops open.
    pub fn command(&self, cmd: OpenerCommand) {
        let (target, moving) = match cmd {
            OpenerCommand::Open => (Position::Open, Position::Opening),
            OpenerCommand::Close => (Position::Closed, Position::Closing),
        };
        let started = self.with(|s| {
            if s.position == target {
                return None;
            }
            s.generation += 1;
            s.position = moving;
            Some((s.generation, s.travel))
        });
        let Some((generation, travel)) = started else {
            return;
        };
        self.emit(OpenerEvent::Position(moving));
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(travel).await;
            let done = me.with(|s| {
                if s.generation != generation {
                    return None;
                }
                s.position = if target == Position::Closed && s.obstructed {
                    Position::Open
                } else {
                    target
                };
                Some(s.position)
            });
            if let Some(p) = done {
                me.emit(OpenerEvent::Position(p));
            }
        });
    }

    pub fn driver(&self) -> SimOpener {
        SimOpener {
            garage: self.clone(),
        }
    }
}

pub struct SimOpener {
    garage: SimulatedGarage,
}

impl OpenerDriver for SimOpener {
    fn start(self: Box<Self>) -> OpenerHandle {
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<OpenerCommand>(16);
        let garage = self.garage;
        let mut sub = garage.inner.events.subscribe();
        let task = tokio::spawn(async move {
            let (p, o) = garage.with(|s| (s.position, s.obstructed));
            for e in [
                OpenerEvent::Available(true),
                OpenerEvent::Position(p),
                OpenerEvent::Obstructed(o),
            ] {
                if ev_tx.send(e).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    e = sub.recv() => match e {
                        Ok(e) => {
                            if ev_tx.send(e).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let (p, o) = garage.with(|s| (s.position, s.obstructed));
                            let _ = ev_tx.send(OpenerEvent::Position(p)).await;
                            let _ = ev_tx.send(OpenerEvent::Obstructed(o)).await;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    c = cmd_rx.recv() => match c {
                        Some(c) => garage.command(c),
                        None => return,
                    },
                }
            }
        });
        OpenerHandle::new(ev_rx, cmd_tx, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(h: &mut OpenerHandle) -> OpenerEvent {
        tokio::time::timeout(Duration::from_secs(5), h.events.recv())
            .await
            .expect("an event in time")
            .expect("driver running")
    }

    #[tokio::test]
    async fn the_door_travels_and_reverses_on_an_obstruction() {
        let g = SimulatedGarage::new();
        g.set_travel(Duration::from_millis(5));
        let mut h = Box::new(g.driver()).start();
        assert_eq!(next(&mut h).await, OpenerEvent::Available(true));
        assert_eq!(next(&mut h).await, OpenerEvent::Position(Position::Closed));
        assert_eq!(next(&mut h).await, OpenerEvent::Obstructed(false));
        h.commands.send(OpenerCommand::Open).await.unwrap();
        assert_eq!(next(&mut h).await, OpenerEvent::Position(Position::Opening));
        assert_eq!(next(&mut h).await, OpenerEvent::Position(Position::Open));
        g.set_obstructed(true);
        assert_eq!(next(&mut h).await, OpenerEvent::Obstructed(true));
        h.commands.send(OpenerCommand::Close).await.unwrap();
        assert_eq!(next(&mut h).await, OpenerEvent::Position(Position::Closing));
        assert_eq!(
            next(&mut h).await,
            OpenerEvent::Position(Position::Open),
            "reversed"
        );
        g.set_obstructed(false);
        h.commands.send(OpenerCommand::Close).await.unwrap();
        assert!(
            g.wait_position(Position::Closed, Duration::from_secs(5))
                .await
        );
    }
}
