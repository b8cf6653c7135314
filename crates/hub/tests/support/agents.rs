//! The real device agents for one home, for tests that need the real pieces working
//! together: a lock over a `SimulatedHome` and a camera with the synthetic source,
//! enrolled through the hub's API with pairing codes, each stopped by its own switch.
#![allow(dead_code)]

use std::time::Duration;
use threshold_agent::{
    run_camera, run_lock, CameraConfig, LinkControl, LockConfig, LockDriverConfig, SimulatedHome,
    SourceConfig,
};
use threshold_store::testing::TempDir;
use tokio::sync::watch;

pub struct RealDevices {
    /// The lock's motor, door and sensors.
    pub sim: SimulatedHome,
    /// Cuts the camera's link (a jammer).
    pub cam_link: LinkControl,
    /// Stop switches: the lock's, then the camera's.
    pub stops: Vec<watch::Sender<bool>>,
    pub dirs: Vec<TempDir>,
}

/// Enrol and run a lock and a camera for `home_id` of `owner` on the hub at `base`.
pub async fn start(base: &str, owner: &str, home_id: &str) -> RealDevices {
    let synthetic = SourceConfig::Synthetic {
        width: 160,
        height: 120,
    };
    start_with_source(base, owner, home_id, synthetic).await
}

/// [`start`] with the camera reading `source` (an RTSP camera, ...).
pub async fn start_with_source(
    base: &str,
    owner: &str,
    home_id: &str,
    source: SourceConfig,
) -> RealDevices {
    let codes = [
        super::pairing_code(base, owner, home_id, "lock", "lock").await,
        super::pairing_code(base, owner, home_id, "camera", "camera").await,
    ];
    let sim = SimulatedHome::new();
    sim.set_motor_delay(Duration::from_millis(50));
    let lock_dir = TempDir::new("agents-lock").unwrap();
    let cam_dir = TempDir::new("agents-cam").unwrap();
    let mut lcfg = LockConfig::new(lock_dir.path(), LockDriverConfig::Simulator(sim.clone()));
    lcfg.common.hub_url = Some(base.to_owned());
    lcfg.common.hub_ca_file = super::trusted_ca();
    lcfg.common.pairing_code = Some(codes[0].clone());
    let mut ccfg = CameraConfig::new(cam_dir.path());
    ccfg.source = source;
    ccfg.common.hub_url = Some(base.to_owned());
    ccfg.common.hub_ca_file = super::trusted_ca();
    ccfg.common.pairing_code = Some(codes[1].clone());
    let cam_link = ccfg.common.link_control.clone();
    let (lstop, lrx) = watch::channel(false);
    let (cstop, crx) = watch::channel(false);
    tokio::spawn(run_lock(lcfg, lrx));
    tokio::spawn(run_camera(ccfg, crx));
    RealDevices {
        sim,
        cam_link,
        stops: vec![lstop, cstop],
        dirs: vec![lock_dir, cam_dir],
    }
}
