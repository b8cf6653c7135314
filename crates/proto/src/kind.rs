//! Message kinds and the sequence-number space each one uses.

/// What a message is. The numeric code is the byte on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    // Device -> hub, live (transport sequence space).
    Hello,
    Heartbeat,
    State,
    // Device -> hub, durable records (each kind has its own sequence space).
    Event,
    Frame,
    // Hub -> device.
    Ack,
    Stream,
    Unlock,
    Lock,
    Cameras,
}

/// Which counter a message's `seq` belongs to.
///
/// Live messages share one strictly increasing transport counter, checked against
/// replays. Durable records are numbered in their own log, kept on the device's disk
/// until acknowledged, may arrive late and out of order, and are de-duplicated by
/// number; gaps in the event log are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeqSpace {
    Transport,
    EventLog,
    FrameLog,
    /// Messages signed by the hub, numbered by the hub.
    Downlink,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Hello,
        Kind::Heartbeat,
        Kind::State,
        Kind::Event,
        Kind::Frame,
        Kind::Ack,
        Kind::Stream,
        Kind::Unlock,
        Kind::Lock,
        Kind::Cameras,
    ];

    pub fn code(self) -> u8 {
        match self {
            Kind::Hello => 1,
            Kind::Heartbeat => 2,
            Kind::State => 3,
            Kind::Event => 16,
            Kind::Frame => 17,
            Kind::Ack => 64,
            Kind::Stream => 65,
            Kind::Unlock => 66,
            Kind::Lock => 67,
            Kind::Cameras => 68,
        }
    }

    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Heartbeat => "heartbeat",
            Kind::State => "state",
            Kind::Event => "event",
            Kind::Frame => "frame",
            Kind::Ack => "ack",
            Kind::Stream => "stream",
            Kind::Unlock => "unlock",
            Kind::Lock => "lock",
            Kind::Cameras => "cameras",
        }
    }

    pub fn seq_space(self) -> SeqSpace {
        match self {
            Kind::Hello | Kind::Heartbeat | Kind::State => SeqSpace::Transport,
            Kind::Event => SeqSpace::EventLog,
            Kind::Frame => SeqSpace::FrameLog,
            Kind::Ack | Kind::Stream | Kind::Unlock | Kind::Lock | Kind::Cameras => {
                SeqSpace::Downlink
            }
        }
    }

    /// True for messages a device sends; false for messages the hub sends.
    pub fn is_uplink(self) -> bool {
        self.seq_space() != SeqSpace::Downlink
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_code(k.code()), Some(k));
        }
        let mut codes: Vec<u8> = Kind::ALL.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Kind::ALL.len());
        assert_eq!(Kind::from_code(0), None);
        assert_eq!(Kind::from_code(255), None);
    }
}
