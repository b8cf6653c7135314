//! A house for story tests in simulated time: an owner, a courier, a dispatcher the
//! owner trusts, and a home with a front door (lock, contact sensor, camera), a back
//! door (lock, camera) and a garden camera that watches no door. Its devices keep
//! reporting as real ones do while the test moves the clock; a test darkens,
//! freezes or skews one and drives the people through the real API.
#![allow(dead_code)]

use super::sim::{Sim, SimDevice, LAT, LON};
use serde_json::{json, Value};
use threshold_proto::body::{BoltState, DoorMotion, DoorState, State};
use threshold_store::Role;

/// One simulated device and how it behaves.
pub struct Dev {
    pub sim: SimDevice,
    pub kind: &'static str,
    /// Sends nothing (jammed, unplugged).
    pub dark: bool,
    /// A camera whose picture never changes.
    pub frozen: bool,
    /// Its clock minus the hub's.
    pub skew_ms: i64,
    /// How old a camera's newest frame is when it announces it.
    pub frame_age_ms: i64,
    pub bolt: Option<BoltState>,
    pub door: Option<DoorState>,
    /// A garage-door opener's door moving or stopped part-way.
    pub motion: Option<DoorMotion>,
    /// A garage-door opener's safety sensor.
    pub obstructed: Option<bool>,
    /// Its link is cut (a jammer, a hub that is down): it keeps working, but nothing it
    /// sends arrives. Its event records wait in its log (the outbox) and are uploaded
    /// when the link returns; its periodic messages and state reports are lost.
    pub link_down: bool,
    backlog: Vec<threshold_proto::SignedMessage>,
    /// A camera sending each new frame's record with its heartbeat (stream mode, as
    /// while it is asked to: live view, recording).
    pub streaming: bool,
    /// Frame records captured while the link was down, uploaded when it returns.
    frame_backlog: Vec<threshold_proto::SignedMessage>,
    shade: u8,
    /// How long its periodic messages take to reach the hub after they are signed (a
    /// broker or a hub that has fallen behind). Messages queue in order: when the delay
    /// drops, the newer ones wait behind the older ones still in flight.
    pub delay_ms: i64,
    in_flight: std::collections::VecDeque<(i64, threshold_proto::SignedMessage)>,
}

impl Dev {
    pub(crate) fn new(sim: SimDevice, kind: &'static str) -> Dev {
        let (bolt, door) = match kind {
            "lock" => (Some(BoltState::Locked), Some(DoorState::Closed)),
            "contact_sensor" | "garage_opener" => (None, Some(DoorState::Closed)),
            _ => (None, None),
        };
        Dev {
            sim,
            kind,
            dark: false,
            frozen: false,
            skew_ms: 0,
            frame_age_ms: 60,
            bolt,
            door,
            motion: None,
            obstructed: (kind == "garage_opener").then_some(false),
            link_down: false,
            backlog: Vec::new(),
            streaming: false,
            frame_backlog: Vec::new(),
            shade: 0,
            delay_ms: 0,
            in_flight: Default::default(),
        }
    }

    pub fn hex(&self) -> String {
        self.sim.hex()
    }

    /// Its state report as of now (bolt, door, and a garage door's motion and sensor).
    fn state_body(&self) -> State {
        State {
            bolt: self.bolt,
            door: self.door,
            motion: self.motion,
            obstructed: self.obstructed,
            battery_pct: Some(90),
            ..Default::default()
        }
    }

    /// Its periodic message at hub time `now`, unless dark; then whatever of its
    /// delayed messages is due.
    pub(crate) async fn beat(&mut self, sim: &Sim, now: i64) {
        self.sign_beat(now);
        while self.in_flight.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, m)) = self.in_flight.pop_front() {
                let _ = sim.deliver(&m).await;
            }
        }
    }

    /// Its periodic message(s) at hub time `now`, on their way to the hub.
    fn sign_beat(&mut self, now: i64) {
        if self.dark {
            return;
        }
        let due = now + self.delay_ms;
        let t = now + self.skew_ms;
        if self.link_down {
            // A streaming camera keeps capturing: its frames wait in its outbox.
            if self.streaming && self.kind == "camera" {
                self.shade = self.shade.wrapping_add(7);
                let (record, _) = self.sim.streamed(t, t - self.frame_age_ms, self.shade);
                self.frame_backlog.push(record);
            }
            return;
        }
        if self.streaming && self.kind == "camera" {
            if !self.frozen {
                self.shade = self.shade.wrapping_add(7);
            }
            let (record, beat) = self.sim.streamed(t, t - self.frame_age_ms, self.shade);
            self.in_flight.push_back((due, record));
            self.in_flight.push_back((due, beat));
            return;
        }
        let m = match self.kind {
            "camera" => {
                if !self.frozen {
                    self.shade = self.shade.wrapping_add(7);
                }
                self.sim.heartbeat(t, t - self.frame_age_ms, self.shade)
            }
            _ => {
                let body = self.state_body();
                self.sim.report(t, &body)
            }
        };
        self.in_flight.push_back((due, m));
    }

    /// A record of its event log, signed now (device clock); kept for later while its
    /// link is down.
    pub async fn event(&mut self, sim: &Sim, event_type: &str) {
        self.event_with(sim, event_type, json!({})).await
    }

    /// A record of its event log with a detail, signed now (device clock).
    pub async fn event_with(&mut self, sim: &Sim, event_type: &str, detail: Value) {
        let t = sim.now() + self.skew_ms;
        let m = self.sim.event(t, event_type, detail);
        if self.link_down {
            self.backlog.push(m);
        } else {
            sim.deliver(&m).await.expect("event accepted");
        }
    }

    /// A state report now, with the device's current bolt and door (lost while its
    /// link is down).
    pub async fn report(&mut self, sim: &Sim) {
        if self.link_down {
            return;
        }
        let t = sim.now() + self.skew_ms;
        let body = self.state_body();
        let m = self.sim.report(t, &body);
        sim.deliver(&m).await.expect("state accepted");
    }

    /// Its link is cut.
    pub fn cut(&mut self) {
        self.link_down = true;
    }

    /// Its link is back: the log it kept meanwhile is uploaded in order (the hub learns
    /// of those events late, each signed when it happened), then it reports its state
    /// afresh, as a reconnecting agent does.
    pub async fn restore(&mut self, sim: &Sim) {
        self.link_down = false;
        for m in std::mem::take(&mut self.backlog) {
            sim.deliver(&m).await.expect("logged event accepted");
        }
        for m in std::mem::take(&mut self.frame_backlog) {
            sim.deliver(&m).await.expect("backlog frame accepted");
        }
        if self.kind != "camera" {
            self.report(sim).await;
        }
    }

    /// Only its newest kept record gets through (the older ones are still on their
    /// way, e.g. behind a reconnect): the hub sees a gap in its log.
    pub async fn upload_newest(&mut self, sim: &Sim) {
        let m = self.backlog.pop().expect("a kept record");
        sim.deliver(&m).await.expect("logged event accepted");
    }

    /// How many event records wait for the link.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }
}

/// One door's devices.
pub struct DoorKit {
    pub id: String,
    pub lock: Dev,
    pub contact: Option<Dev>,
    pub camera: Dev,
}

pub struct House {
    pub owner: String,
    pub owner_id: String,
    pub courier: String,
    pub courier_id: String,
    pub dispatcher: String,
    pub dispatcher_id: String,
    pub home: String,
    pub front: DoorKit,
    pub back: DoorKit,
    pub garden: Dev,
}

impl House {
    pub async fn new(sim: &Sim) -> House {
        let (owner_id, owner) = sim.user(Role::Owner, "owner").await;
        let (courier_id, courier) = sim.user(Role::Courier, "courier").await;
        let (dispatcher_id, dispatcher) = sim.user(Role::Dispatcher, "dispatcher").await;
        let home = sim.home(&owner, "Home").await;
        let front_id = sim.door(&owner, &home, "Front door").await;
        let back_id = sim.door(&owner, &home, "Back door").await;
        let pair = |kind: &'static str, name: &'static str, door: Option<String>| {
            let (owner, home) = (owner.clone(), home.clone());
            async move {
                Dev::new(
                    sim.pair(&owner, &home, kind, name, door.as_deref()).await,
                    kind,
                )
            }
        };
        let front = DoorKit {
            lock: pair("lock", "Front lock", Some(front_id.clone())).await,
            contact: Some(pair("contact_sensor", "Front contact", Some(front_id.clone())).await),
            camera: pair("camera", "Hall camera", Some(front_id.clone())).await,
            id: front_id,
        };
        let back = DoorKit {
            lock: pair("lock", "Back lock", Some(back_id.clone())).await,
            contact: None,
            camera: pair("camera", "Back camera", Some(back_id.clone())).await,
            id: back_id,
        };
        let garden = pair("camera", "Garden camera", None).await;
        let (s, b) = sim
            .http(
                "PUT",
                &format!("/api/v1/homes/{home}/merchants/{dispatcher_id}"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        House {
            owner,
            owner_id,
            courier,
            courier_id,
            dispatcher,
            dispatcher_id,
            home,
            front,
            back,
            garden,
        }
    }

    fn devices(&mut self) -> Vec<&mut Dev> {
        let mut v = vec![
            &mut self.front.lock,
            &mut self.front.camera,
            &mut self.back.lock,
            &mut self.back.camera,
            &mut self.garden,
        ];
        if let Some(c) = self.front.contact.as_mut() {
            v.push(c);
        }
        v
    }

    /// Let `ms` pass: every 250 ms each device that is not dark sends its periodic
    /// message (cameras a heartbeat with a new frame, locks and sensors their state),
    /// and the hub's periodic passes run.
    pub async fn run(&mut self, sim: &mut Sim, ms: i64) {
        let mut left = ms;
        while left > 0 {
            let now = sim.now();
            for d in self.devices() {
                d.beat(sim, now).await;
            }
            let step = left.min(250);
            sim.advance(step).await;
            left -= step;
        }
    }

    /// A delivery through `door` (default: the front door) for the courier, window
    /// around now; returns its id.
    pub async fn delivery(&self, sim: &Sim, door: Option<&str>, parcel: &str) -> String {
        let door = door.unwrap_or(&self.front.id);
        create_delivery(
            sim,
            &self.dispatcher,
            &self.home,
            &self.courier_id,
            parcel,
            Some(door),
        )
        .await
    }

    /// The courier at the door asks to enter; returns the decision.
    pub async fn enter(&self, sim: &Sim, delivery: &str, parcel: &str) -> Value {
        ask_to_enter(sim, &self.courier, delivery, parcel).await
    }

    /// The owner's alerts, newest first.
    pub async fn alerts(&self, sim: &Sim) -> Vec<Value> {
        owner_alerts(sim, &self.owner).await
    }

    /// The kinds of the owner's alerts, oldest first.
    pub async fn alert_kinds(&self, sim: &Sim) -> Vec<String> {
        kinds_oldest_first(&self.alerts(sim).await)
    }

    /// The home's timeline, newest first.
    pub async fn timeline(&self, sim: &Sim) -> Vec<Value> {
        home_timeline(sim, &self.owner, &self.home).await
    }

    pub async fn delivery_state(&self, sim: &Sim, delivery: &str) -> String {
        delivery_state(sim, &self.owner, delivery).await
    }

    /// `dev` as the owner's list of the home's devices shows it (its liveness, and in
    /// `state.watching` what the camera rule says).
    pub async fn device_view(&self, sim: &Sim, dev: &Dev) -> Value {
        let devices = home_devices(sim, &self.owner, &self.home).await;
        devices
            .iter()
            .find(|x| x["id"] == dev.hex())
            .cloned()
            .unwrap_or_else(|| panic!("the device is listed: {devices:?}"))
    }
}

/// The physical door of `kit` opens: the lock and the contact sensor both report it
/// (the hub must count it once).
pub async fn door_opens(sim: &Sim, kit: &mut DoorKit) {
    kit.lock.door = Some(DoorState::Open);
    kit.lock.event(sim, "door_opened").await;
    kit.lock.report(sim).await;
    if let Some(c) = kit.contact.as_mut() {
        c.door = Some(DoorState::Open);
        c.event(sim, "door_opened").await;
        c.report(sim).await;
    }
}

/// The door closes (both devices report it).
pub async fn door_closes(sim: &Sim, kit: &mut DoorKit) {
    kit.lock.door = Some(DoorState::Closed);
    kit.lock.event(sim, "door_closed").await;
    kit.lock.report(sim).await;
    if let Some(c) = kit.contact.as_mut() {
        c.door = Some(DoorState::Closed);
        c.event(sim, "door_closed").await;
        c.report(sim).await;
    }
}

/// The lock retracts the bolt (it accepted a token).
pub async fn bolt_retracts(sim: &Sim, kit: &mut DoorKit) {
    kit.lock.bolt = Some(BoltState::Unlocked);
    kit.lock.event(sim, "token_accepted").await;
    kit.lock.event(sim, "bolt_unlocked").await;
    kit.lock.report(sim).await;
}

/// The lock throws the bolt (its own rule, or a command).
pub async fn bolt_throws(sim: &Sim, kit: &mut DoorKit) {
    kit.lock.bolt = Some(BoltState::Locked);
    kit.lock.event(sim, "relocked").await;
    kit.lock.event(sim, "bolt_locked").await;
    kit.lock.report(sim).await;
}

/// A flat for story tests in simulated time: an owner, two couriers, a dispatcher the
/// owner trusts, and a home with one door whose lock and camera are all its devices
/// (as the real-agent tests furnish it), so the home-level lock endpoints apply.
pub struct Flat {
    pub owner: String,
    pub owner_id: String,
    pub courier: String,
    pub courier_id: String,
    pub courier2: String,
    pub dispatcher: String,
    pub home: String,
    pub door: DoorKit,
}

impl Flat {
    pub async fn new(sim: &Sim) -> Flat {
        let (owner_id, owner) = sim.user(Role::Owner, "olivia").await;
        let (courier_id, courier) = sim.user(Role::Courier, "carl").await;
        let (_, courier2) = sim.user(Role::Courier, "cora").await;
        let (dispatcher_id, dispatcher) = sim.user(Role::Dispatcher, "dora").await;
        let home = sim.home(&owner, "Flat 3").await;
        let door = sim.door(&owner, &home, "Front door").await;
        let lock = sim
            .pair(&owner, &home, "lock", "lock", Some(door.as_str()))
            .await;
        let camera = sim
            .pair(&owner, &home, "camera", "camera", Some(door.as_str()))
            .await;
        let (s, b) = sim
            .http(
                "PUT",
                &format!("/api/v1/homes/{home}/merchants/{dispatcher_id}"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        Flat {
            owner,
            owner_id,
            courier,
            courier_id,
            courier2,
            dispatcher,
            home,
            door: DoorKit {
                id: door,
                lock: Dev::new(lock, "lock"),
                contact: None,
                camera: Dev::new(camera, "camera"),
            },
        }
    }

    /// Let `ms` pass with the devices reporting every 250 ms (see [`House::run`]).
    pub async fn run(&mut self, sim: &mut Sim, ms: i64) {
        let mut left = ms;
        while left > 0 {
            let now = sim.now();
            self.door.lock.beat(sim, now).await;
            self.door.camera.beat(sim, now).await;
            let step = left.min(250);
            sim.advance(step).await;
            left -= step;
        }
    }

    /// A delivery for the courier, window around now; returns its id.
    pub async fn delivery(&self, sim: &Sim, parcel: &str) -> String {
        create_delivery(
            sim,
            &self.dispatcher,
            &self.home,
            &self.courier_id,
            parcel,
            None,
        )
        .await
    }

    /// The courier at the door asks to enter; returns the decision.
    pub async fn enter(&self, sim: &Sim, delivery: &str, parcel: &str) -> Value {
        ask_to_enter(sim, &self.courier, delivery, parcel).await
    }

    /// GET a delivery as `who`.
    pub async fn get_delivery(&self, sim: &Sim, who: &str, delivery: &str) -> (u16, Value) {
        sim.http(
            "GET",
            &format!("/api/v1/deliveries/{delivery}"),
            Some(who),
            None,
        )
        .await
    }

    pub async fn delivery_state(&self, sim: &Sim, delivery: &str) -> String {
        delivery_state(sim, &self.owner, delivery).await
    }

    /// The courier says it is delivered.
    pub async fn delivered(&self, sim: &Sim, delivery: &str) -> (u16, Value) {
        sim.http(
            "POST",
            &format!("/api/v1/deliveries/{delivery}/delivered"),
            Some(&self.courier),
            None,
        )
        .await
    }

    /// The home's lock as the owner's app shows it.
    pub async fn lock(&self, sim: &Sim) -> Value {
        let (s, b) = sim
            .http(
                "GET",
                &format!("/api/v1/homes/{}/lock", self.home),
                Some(&self.owner),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    /// The owner's alerts, newest first.
    pub async fn alerts(&self, sim: &Sim) -> Vec<Value> {
        owner_alerts(sim, &self.owner).await
    }

    /// The kinds of the owner's alerts, oldest first.
    pub async fn alert_kinds(&self, sim: &Sim) -> Vec<String> {
        kinds_oldest_first(&self.alerts(sim).await)
    }

    /// The home's timeline, newest first.
    pub async fn timeline(&self, sim: &Sim) -> Vec<Value> {
        home_timeline(sim, &self.owner, &self.home).await
    }

    pub async fn count_timeline(&self, sim: &Sim, kind: &str) -> usize {
        self.timeline(sim)
            .await
            .iter()
            .filter(|t| t["kind"] == kind)
            .count()
    }
}

/// A house whose deliveries go into the garage: an owner, a courier, a trusted
/// dispatcher, and a home with a garage (a garage-door opener and the garage's own
/// camera) and a front door (lock and camera) whose live camera must never vouch for
/// the garage.
pub struct GarageHome {
    pub owner: String,
    pub courier: String,
    pub courier_id: String,
    pub dispatcher: String,
    pub home: String,
    pub garage: DoorKit,
    pub front: DoorKit,
}

impl GarageHome {
    pub async fn new(sim: &Sim) -> GarageHome {
        let (_, owner) = sim.user(Role::Owner, "gwen").await;
        let (courier_id, courier) = sim.user(Role::Courier, "gus").await;
        let (dispatcher_id, dispatcher) = sim.user(Role::Dispatcher, "gia").await;
        let home = sim.home(&owner, "House with a garage").await;
        let garage_id = sim.door(&owner, &home, "Garage").await;
        let front_id = sim.door(&owner, &home, "Front door").await;
        let pair = |kind: &'static str, name: &'static str, door: &str| {
            let (owner, home, door) = (owner.clone(), home.clone(), door.to_owned());
            async move { Dev::new(sim.pair(&owner, &home, kind, name, Some(&door)).await, kind) }
        };
        let garage = DoorKit {
            lock: pair("garage_opener", "Garage opener", &garage_id).await,
            contact: None,
            camera: pair("camera", "Garage camera", &garage_id).await,
            id: garage_id,
        };
        let front = DoorKit {
            lock: pair("lock", "Front lock", &front_id).await,
            contact: None,
            camera: pair("camera", "Porch camera", &front_id).await,
            id: front_id,
        };
        let (s, b) = sim
            .http(
                "PUT",
                &format!("/api/v1/homes/{home}/merchants/{dispatcher_id}"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        GarageHome {
            owner,
            courier,
            courier_id,
            dispatcher,
            home,
            garage,
            front,
        }
    }

    /// Let `ms` pass with the devices reporting every 250 ms (see [`House::run`]).
    pub async fn run(&mut self, sim: &mut Sim, ms: i64) {
        let mut left = ms;
        while left > 0 {
            let now = sim.now();
            for d in [
                &mut self.garage.lock,
                &mut self.garage.camera,
                &mut self.front.lock,
                &mut self.front.camera,
            ] {
                d.beat(sim, now).await;
            }
            let step = left.min(250);
            sim.advance(step).await;
            left -= step;
        }
    }

    /// A delivery into `door` for the courier, window around now.
    pub async fn delivery(&self, sim: &Sim, door: &str, parcel: &str) -> String {
        create_delivery(
            sim,
            &self.dispatcher,
            &self.home,
            &self.courier_id,
            parcel,
            Some(door),
        )
        .await
    }

    /// The courier at the garage asks to enter; returns the decision.
    pub async fn enter(&self, sim: &Sim, delivery: &str, parcel: &str) -> Value {
        ask_to_enter(sim, &self.courier, delivery, parcel).await
    }

    /// The courier says it is delivered.
    pub async fn delivered(&self, sim: &Sim, delivery: &str) -> (u16, Value) {
        sim.http(
            "POST",
            &format!("/api/v1/deliveries/{delivery}/delivered"),
            Some(&self.courier),
            None,
        )
        .await
    }

    /// The garage door as the owner's app shows it.
    pub async fn garage_view(&self, sim: &Sim) -> Value {
        let (s, b) = sim
            .http(
                "GET",
                &format!("/api/v1/doors/{}/lock", self.garage.id),
                Some(&self.owner),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    pub async fn alerts(&self, sim: &Sim) -> Vec<Value> {
        owner_alerts(sim, &self.owner).await
    }

    pub async fn alert_kinds(&self, sim: &Sim) -> Vec<String> {
        kinds_oldest_first(&self.alerts(sim).await)
    }

    pub async fn timeline(&self, sim: &Sim) -> Vec<Value> {
        home_timeline(sim, &self.owner, &self.home).await
    }

    pub async fn delivery_state(&self, sim: &Sim, delivery: &str) -> String {
        delivery_state(sim, &self.owner, delivery).await
    }
}

/// The garage door starts moving (`motion`) and is no longer closed; the opener logs
/// the opening.
pub async fn garage_moves(sim: &Sim, opener: &mut Dev, motion: DoorMotion) {
    let was_closed = opener.door == Some(DoorState::Closed);
    opener.door = Some(DoorState::Open);
    opener.motion = Some(motion);
    if was_closed {
        opener.event(sim, "door_opened").await;
    }
    opener.report(sim).await;
}

/// The garage door comes to rest fully open or fully closed.
pub async fn garage_rests(sim: &Sim, opener: &mut Dev, door: DoorState) {
    opener.door = Some(door);
    opener.motion = None;
    if door == DoorState::Closed {
        opener.event(sim, "door_closed").await;
    }
    opener.report(sim).await;
}

/// An alert's evidence as JSON (the API returns it parsed; accept a string too).
pub fn evidence(a: &Value) -> Value {
    match &a["evidence"] {
        Value::String(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        v => v.clone(),
    }
}

/// What a home's people do through the API, whichever fixture they belong to.
async fn create_delivery(
    sim: &Sim,
    dispatcher: &str,
    home: &str,
    courier_id: &str,
    parcel: &str,
    door: Option<&str>,
) -> String {
    let now = sim.now();
    let mut body = json!({"home_id": home, "courier_id": courier_id,
        "window_start_ms": now - 60_000, "window_end_ms": now + 3_600_000,
        "parcel_ref": parcel});
    if let Some(door) = door {
        body["door_id"] = json!(door);
    }
    let (s, d) = sim
        .http("POST", "/api/v1/deliveries", Some(dispatcher), Some(body))
        .await;
    assert_eq!(s, 201, "{d}");
    d["id"].as_str().unwrap().to_owned()
}

/// The courier at the door asks to enter; the decision.
async fn ask_to_enter(sim: &Sim, courier: &str, delivery: &str, parcel: &str) -> Value {
    let (s, b) = sim
        .http(
            "POST",
            &format!("/api/v1/deliveries/{delivery}/entry"),
            Some(courier),
            Some(json!({"lat": LAT, "lon": LON, "accuracy_m": 5.0, "parcel_ref": parcel})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

/// A list the owner reads (200 expected).
async fn owner_list(sim: &Sim, owner: &str, path: &str) -> Vec<Value> {
    let (s, b) = sim.http("GET", path, Some(owner), None).await;
    assert_eq!(s, 200, "{b}");
    b.as_array().cloned().unwrap_or_default()
}

/// The owner's alerts, newest first.
async fn owner_alerts(sim: &Sim, owner: &str) -> Vec<Value> {
    owner_list(sim, owner, "/api/v1/alerts").await
}

/// The home's devices as the owner's app lists them.
pub async fn home_devices(sim: &Sim, owner: &str, home: &str) -> Vec<Value> {
    owner_list(sim, owner, &format!("/api/v1/homes/{home}/devices")).await
}

/// The home's timeline, newest first.
async fn home_timeline(sim: &Sim, owner: &str, home: &str) -> Vec<Value> {
    owner_list(
        sim,
        owner,
        &format!("/api/v1/homes/{home}/timeline?limit=500"),
    )
    .await
}

/// Alerts' kinds, oldest first.
fn kinds_oldest_first(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .rev()
        .map(|a| a["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// A delivery's state as its owner sees it.
async fn delivery_state(sim: &Sim, owner: &str, delivery: &str) -> String {
    let (s, b) = sim
        .http(
            "GET",
            &format!("/api/v1/deliveries/{delivery}"),
            Some(owner),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["state"].as_str().unwrap_or("").to_owned()
}
