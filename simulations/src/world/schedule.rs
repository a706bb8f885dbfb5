//! The next-event queue's entries: what happens ([`Action`]) and when ([`Scheduled`],
//! ordered by time, then by the order they were scheduled in, so runs are reproducible).

use muster::proto::Time;

pub(super) enum Action {
    Deliver {
        to: usize,
        from: usize,
        payload: Vec<u8>,
        stream: bool,
    },
    Wake {
        node: usize,
        at: Time,
    },
    Start {
        node: usize,
    },
    Fault(usize),
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    ChurnTick {
        fault: usize,
    },
    JoinRetry {
        node: usize,
    },
    Sample,
    ConvergeCheck,
    StateWrite,
    PrimaryCheck,
    KillPrimary {
        fault: usize,
        round: usize,
    },
}

pub(super) struct Scheduled {
    pub(super) at: Time,
    pub(super) seq: u64,
    pub(super) action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}
