//! The virtio-vsock device (virtio 1.2 §5.10) and the switch that moves stream packets between
//! cells under the board's policy.
#![forbid(unsafe_code)]
//!
//! # Design
//!
//! Every cell the board connects sees its own virtio-mmio socket device ([`VsockDevice`],
//! DEVICE_ID 19, queues rx 0, tx 1, event 2, configuration `le64 guest_cid`, no feature beyond
//! VERSION_1, so no SEQPACKET), driven by the guest's unmodified `vmw_vsock_virtio_transport`.
//! The device reads a packet (the 44-byte `struct virtio_vsock_hdr` and its payload, in one
//! descriptor or several) out of the cell's tx queue through [`GuestMemory`] into a buffer of
//! its own, hands it to a [`Switch`], and writes the packets the switch holds for the cell into
//! the rx buffers the guest posted. **Packets are copied, never mapped**: a payload is read from
//! the sender's RAM (bounds-checked against it) into cellvisor's heap and later written into the
//! receiver's RAM (bounds-checked against that); no cell's memory is ever visible to another,
//! and nothing a cell does to its own RAM after sending can change what the peer receives.
//!
//! [`VsockSwitch`] is the switch: a pure state machine (no locks, no clock of its own, no
//! floating point) holding the connection table, one bounded receive queue per cell and the
//! policy. **Credit and the queue bounds bound memory.** A stream's receiver advertises
//! `buf_alloc` (its receive buffer) and `fwd_cnt` (bytes its application consumed); the Linux
//! sender never has more than `buf_alloc - (tx_cnt - fwd_cnt)` bytes in flight. The switch
//! forwards the credit fields unchanged (a Linux receiver sends a CREDIT_UPDATE only once its
//! free space, counted against the `buf_alloc` it advertised, runs low: a switch that lowered
//! `buf_alloc` on the way would leave the sender waiting for an update that never comes), keeps
//! both directions' counters itself and resets a connection whose sender goes beyond the credit
//! it was given, so no receiver is sent more than it asked for (newer Linux resets such a
//! connection itself, older drops the data). What cellvisor holds is bounded by the receive
//! queue of each cell ([`RX_PACKETS`], [`RX_BYTES`], whatever the receivers advertise): when it
//! is full the sender's packet is not dropped but left in the sender's device
//! ([`Verdict::Busy`]), which takes nothing more from its tx queue until the receiver made room,
//! so the sender is throttled as a full link throttles it. (A Linux receiver empties its rx
//! queue whatever its applications do, its socket buffers being bounded by the credit it gave;
//! a receiver that stops taking rx buffers holds up its senders' tx queues, all their
//! connections included, until it is reset.) The connection table is bounded too
//! ([`MAX_CONNECTIONS`], [`MAX_CELL_CONNECTIONS`] per cell, [`MAX_PAIR_CONNECTIONS`] per pair
//! of cells): refused requests never create an entry.
//!
//! **What is refused.** Everything that no [`Flow`] of the [`Policy`] allows: a connection
//! request to a cell and port no flow names for that pair of cells, a request or data while a
//! flow's focus rule does not hold, a message larger than the flow's `max_message`, more
//! messages than its rate, data beyond the receiver's credit, and every protocol violation
//! (a duplicate REQUEST, data before the RESPONSE, a RESPONSE from the connecting side, a
//! header of another socket type, an unknown CID, a `len` beyond the packet). A refusal is
//! answered as Linux's own transport answers a packet no socket wants, with a connection reset
//! (RST); on a connection that existed both ends get one and the entry goes. Refusals are
//! counted per cell and per flow ([`CellStats`], [`FlowStats`]) and the last one is kept for the
//! caller's rate-limited log ([`VsockSwitch::take_refusal`]). A header whose `src_cid` is not
//! the sender's own is dropped without an answer, as vhost-vsock drops it.
//!
//! **The kill switch and a wipe.** [`VsockSwitch::reset_cell`] resets every connection of a
//! cell (its peers get an RST) and drops every queued packet from or to it, so a wiped cell's
//! half-sent data never arrives after the wipe; [`VsockDevice::reset`] drops the packet its
//! device may hold back.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use super::mmio::VirtioMmio;
use super::{GuestMemory, VirtioDevice, VirtioError, Virtqueue};
use crate::dev::mmio::AccessWidth;

/// The virtio device ID of a socket device.
pub const DEVICE_ID: u32 = 19;
/// The receive queue's index (device to driver).
pub const RXQ: usize = 0;
/// The transmit queue's index (driver to device).
pub const TXQ: usize = 1;
/// The event queue's index (unused: cellvisor sends no transport events).
pub const EVENTQ: usize = 2;
/// Bytes of `struct virtio_vsock_hdr`.
pub const HEADER_SIZE: usize = 44;
/// The largest payload taken from a tx packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
pub const MAX_PAYLOAD: u32 = 64 * 1024;
/// Packets forwarded from other cells that may wait in one cell's receive queue.
pub const RX_PACKETS: usize = 64;
/// Payload bytes that may wait in one cell's receive queue.
pub const RX_BYTES: usize = 256 * 1024;
/// Further packets the switch itself may queue for a cell (resets, credit answers) beyond
/// [`RX_PACKETS`].
pub const CONTROL_RESERVE: usize = 64;
/// Connections in the whole table.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections one cell may be an end of.
pub const MAX_CELL_CONNECTIONS: usize = 64;
/// Connections between one pair of cells (so that no cell allowed to connect to another can
/// take all of that cell's share from the others).
pub const MAX_PAIR_CONNECTIONS: usize = 16;
/// Connections closed by a reset (the switch's own, for a refusal or the kill switch, or one end's
/// RST) that the switch remembers, so that what the end that did not cause the reset had in
/// flight then is answered with an RST as before but not counted or logged against it
/// ([`Refusal::AfterReset`]; Linux, too, answers such packets without a word). The end that
/// caused it (the refused sender, the end that sent the RST) gets no such pass.
pub const RECENT_RESETS: usize = 32;
/// Well-known CID of the host (no cell has it; nothing listens there).
pub const CID_HOST: u64 = 2;

/// Socket type of a stream (the only one offered).
pub const TYPE_STREAM: u16 = 1;

/// Operations (`op`).
pub mod op {
    /// Connection request.
    pub const REQUEST: u16 = 1;
    /// Connection accepted.
    pub const RESPONSE: u16 = 2;
    /// Connection reset.
    pub const RST: u16 = 3;
    /// Shutdown (flags: [`super::SHUTDOWN_RCV`], [`super::SHUTDOWN_SEND`]).
    pub const SHUTDOWN: u16 = 4;
    /// Data.
    pub const RW: u16 = 5;
    /// Credit announcement.
    pub const CREDIT_UPDATE: u16 = 6;
    /// Credit query.
    pub const CREDIT_REQUEST: u16 = 7;
}

/// SHUTDOWN flag: the sender will receive no more.
pub const SHUTDOWN_RCV: u32 = 1;
/// SHUTDOWN flag: the sender will send no more.
pub const SHUTDOWN_SEND: u32 = 2;

/// `struct virtio_vsock_hdr`, all fields little-endian on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Source CID.
    pub src_cid: u64,
    /// Destination CID.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    /// Socket type ([`TYPE_STREAM`]).
    pub kind: u16,
    /// Operation ([`op`]).
    pub op: u16,
    /// Operation flags (SHUTDOWN's).
    pub flags: u32,
    /// The sender's receive buffer size.
    pub buf_alloc: u32,
    /// Bytes the sender's application has consumed.
    pub fwd_cnt: u32,
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn put(out: &mut [u8; HEADER_SIZE], at: usize, bytes: &[u8]) {
    if let Some(target) = at
        .checked_add(bytes.len())
        .and_then(|end| out.get_mut(at..end))
    {
        target.copy_from_slice(bytes);
    }
}

impl Header {
    /// Decodes the first [`HEADER_SIZE`] bytes of `bytes`; `None` when there are fewer.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            src_cid: u64::from_le_bytes(field(bytes, 0)?),
            dst_cid: u64::from_le_bytes(field(bytes, 8)?),
            src_port: u32::from_le_bytes(field(bytes, 16)?),
            dst_port: u32::from_le_bytes(field(bytes, 20)?),
            len: u32::from_le_bytes(field(bytes, 24)?),
            kind: u16::from_le_bytes(field(bytes, 28)?),
            op: u16::from_le_bytes(field(bytes, 30)?),
            flags: u32::from_le_bytes(field(bytes, 32)?),
            buf_alloc: u32::from_le_bytes(field(bytes, 36)?),
            fwd_cnt: u32::from_le_bytes(field(bytes, 40)?),
        })
    }

    /// The header's 44 bytes on the wire.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        put(&mut out, 0, &self.src_cid.to_le_bytes());
        put(&mut out, 8, &self.dst_cid.to_le_bytes());
        put(&mut out, 16, &self.src_port.to_le_bytes());
        put(&mut out, 20, &self.dst_port.to_le_bytes());
        put(&mut out, 24, &self.len.to_le_bytes());
        put(&mut out, 28, &self.kind.to_le_bytes());
        put(&mut out, 30, &self.op.to_le_bytes());
        put(&mut out, 32, &self.flags.to_le_bytes());
        put(&mut out, 36, &self.buf_alloc.to_le_bytes());
        put(&mut out, 40, &self.fwd_cnt.to_le_bytes());
        out
    }

    /// A reset answering `self` (source and destination swapped, no payload), as Linux's
    /// `virtio_transport_reset_no_sock` builds it.
    pub fn reset_reply(&self) -> Self {
        Self {
            src_cid: self.dst_cid,
            dst_cid: self.src_cid,
            src_port: self.dst_port,
            dst_port: self.src_port,
            len: 0,
            kind: TYPE_STREAM,
            op: op::RST,
            flags: 0,
            buf_alloc: 0,
            fwd_cnt: 0,
        }
    }
}

pub use crate::board::{Flow, FocusRule};

/// A connection a reset closed, for [`Refusal::AfterReset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecentReset {
    /// (cell index, port) of each end.
    ends: [(usize, u32); 2],
    /// The cell that caused the reset, if one did (its late packets are its own fault).
    offender: Option<usize>,
}

/// The board's vsock policy: the allowed flows; everything else is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The allowed flows.
    pub flows: &'static [Flow],
}

/// Why the switch refused a packet (answered with RST) or dropped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The sending device's CID is not one of the switch's cells (dropped).
    UnknownSender,
    /// `src_cid` is not the sender's own CID (dropped without an answer, as vhost does).
    SpoofedSource,
    /// The destination CID is no cell's (or the sender's own).
    UnknownCid,
    /// A socket type other than stream.
    BadType,
    /// No flow allows the connection.
    NoFlow,
    /// The flow's focus rule does not hold.
    NotFocused,
    /// The flow's message rate is used up.
    RateExceeded,
    /// A message larger than the flow's `max_message`.
    MessageTooLarge,
    /// Data beyond the receiver's credit.
    CreditExceeded,
    /// The connection table (or the cell's share of it) is full.
    TableFull,
    /// A REQUEST for a connection that exists.
    DuplicateRequest,
    /// A packet the connection's state does not allow (data before RESPONSE, a RESPONSE from
    /// the connecting side, data after the sender's shutdown).
    Protocol,
    /// A packet other than RST for a connection that does not exist.
    NoConnection,
    /// A header whose `len` exceeds the packet or [`MAX_PAYLOAD`], or a payload on a packet
    /// other than RW.
    Malformed,
    /// An unknown operation on an existing connection (dropped, as Linux drops it).
    UnknownOp,
    /// An RST for no connection (dropped: a reset is never answered).
    StrayReset,
    /// The sender's or the destination's channel is switched off (`channel off CELL`).
    ChannelOff,
    /// The destination cell's device has no driver (the cell is off, restarting, or its driver
    /// reset the device): as Linux answers a port nobody listens on.
    PeerAbsent,
    /// A packet of a connection just closed by a reset the sender did not cause, sent before it
    /// saw the reset: answered with an RST like any packet of a closed connection, but neither
    /// counted nor logged (the sender is not at fault).
    AfterReset,
}

impl Refusal {
    /// How many kinds of refusal there are ([`Refusal::index`] is below it): one past the last
    /// kind (the enum's variants take the default discriminants 0, 1, ...).
    pub const COUNT: usize = Self::AfterReset as usize + 1;

    /// A dense number for each kind, below [`Refusal::COUNT`] (per-kind tables such as the
    /// channel's log limiters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Text for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownSender => "sender is not connected",
            Self::SpoofedSource => "spoofed source cid",
            Self::UnknownCid => "unknown destination cid",
            Self::BadType => "socket type is not stream",
            Self::NoFlow => "no flow allows it",
            Self::NotFocused => "flow needs focus",
            Self::RateExceeded => "rate exceeded",
            Self::MessageTooLarge => "message too large",
            Self::CreditExceeded => "beyond the receiver's credit",
            Self::TableFull => "connection table full",
            Self::DuplicateRequest => "duplicate request",
            Self::Protocol => "protocol violation",
            Self::NoConnection => "no such connection",
            Self::Malformed => "malformed packet",
            Self::UnknownOp => "unknown operation",
            Self::StrayReset => "reset for no connection",
            Self::ChannelOff => "channel off",
            Self::PeerAbsent => "peer has no driver",
            Self::AfterReset => "packet after the connection's reset",
        }
    }

    /// Whether the refusal is worth a log line: the policy said no, or the sender broke the
    /// protocol. Not a peer without a driver (a cell restarting, as a port nobody listens on),
    /// nor the drops that answer nothing (a stray reset, an unknown operation, a packet that
    /// crossed the switch's reset).
    pub fn is_logged(self) -> bool {
        !matches!(
            self,
            Self::PeerAbsent | Self::StrayReset | Self::UnknownOp | Self::AfterReset
        )
    }
}

/// What became of a packet handed to a [`Switch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Queued for the destination cell.
    Forwarded,
    /// Answered by the switch itself (a credit request).
    Answered,
    /// Refused: the sender (and the peer of an existing connection) gets an RST; counted.
    Refused(Refusal),
    /// Dropped without an answer; counted.
    Dropped(Refusal),
    /// Not taken now (a receive queue is full): the device keeps the packet and offers it
    /// again later, taking nothing else from its tx queue meanwhile.
    Busy,
}

/// What a [`VsockDevice`] needs from the switch it is connected to.
pub trait Switch {
    /// A well-formed packet (`payload` holds exactly `header.len` bytes) sent by the cell whose
    /// CID is `from_cid`.
    fn route(&mut self, from_cid: u64, header: &Header, payload: &[u8]) -> Verdict;
    /// A packet whose header is complete but whose `len` cannot be trusted: never forwarded.
    fn malformed(&mut self, from_cid: u64, header: &Header) -> Verdict;
    /// Whether a packet waits for the cell `cid`.
    fn has_rx(&self, cid: u64) -> bool;
    /// Takes the next packet for `cid`, with at most `max_payload` bytes of payload (a longer
    /// RW packet is split and its rest stays first in line); `None` when nothing waits or the
    /// next packet needs payload room and `max_payload` is 0.
    fn next_rx(&mut self, cid: u64, max_payload: u32) -> Option<(Header, Vec<u8>)>;
}

/// A packet waiting in a cell's receive queue.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Queued {
    header: Header,
    payload: Vec<u8>,
    /// Bytes of `payload` already delivered (a split RW packet).
    offset: usize,
    /// The sending cell's index (for [`VsockSwitch::reset_cell`]).
    from: usize,
    /// Queued by the switch itself (counts against [`CONTROL_RESERVE`]).
    control: bool,
}

impl Queued {
    fn remaining(&self) -> usize {
        self.payload.len().saturating_sub(self.offset)
    }
}

/// Counters of one cell, for the `channel` command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellStats {
    /// Packets of this cell refused (answered with RST).
    pub refusals: u64,
    /// Packets of this cell dropped without an answer.
    pub dropped: u64,
    /// Connections of this cell reset by [`VsockSwitch::reset_cell`].
    pub resets: u64,
    /// Resets the switch owed this cell but could not queue (its receive queue was full).
    pub resets_lost: u64,
    /// Packets and bytes delivered to this cell.
    pub delivered_packets: u64,
    /// Payload bytes delivered to this cell.
    pub delivered_bytes: u64,
}

/// Counters of one flow, for the `channel` command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Connections established through the flow (REQUESTs forwarded).
    pub connections: u64,
    /// RW packets forwarded, both directions.
    pub packets: u64,
    /// RW payload bytes forwarded, both directions.
    pub bytes: u64,
    /// Packets refused on the flow.
    pub refusals: u64,
}

/// One flow's state: its cells' indices, its token bucket, its counters.
#[derive(Clone, Debug)]
struct FlowState {
    from: Option<usize>,
    to: Option<usize>,
    /// Milli-messages available.
    tokens: u64,
    /// When the bucket was last filled (caller's milliseconds).
    filled_at: u64,
    stats: FlowStats,
}

/// One cell as the switch knows it.
#[derive(Clone, Debug)]
struct CellState {
    name: &'static str,
    cid: u64,
    focused: bool,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    woken: bool,
    stats: CellStats,
    last_refusal: Option<(Refusal, Header)>,
    /// The channel is on for the cell (`channel off CELL` clears it).
    enabled: bool,
    /// The cell's device has a driver (set by the caller from the device's status).
    attached: bool,
}

impl CellState {
    fn data_room(&self, bytes: usize) -> bool {
        let data = self.queue.iter().filter(|packet| !packet.control).count();
        data < RX_PACKETS
            && self
                .queued_bytes
                .checked_add(bytes)
                .is_some_and(|total| total <= RX_BYTES)
    }

    fn control_room(&self) -> bool {
        let control = self.queue.iter().filter(|packet| packet.control).count();
        control < CONTROL_RESERVE
    }

    fn push(&mut self, packet: Queued) {
        self.queued_bytes = self.queued_bytes.saturating_add(packet.remaining());
        self.queue.push_back(packet);
        self.woken = true;
    }

    /// Drops every queued packet `drop` selects.
    fn purge(&mut self, mut drop: impl FnMut(&Queued) -> bool) {
        self.queue.retain(|packet| !drop(packet));
        self.queued_bytes = self.queue.iter().map(Queued::remaining).sum();
    }
}

/// A connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// REQUEST forwarded, RESPONSE not yet seen.
    Requested,
    /// RESPONSE forwarded.
    Established,
}

/// End `end` of a connection's two-element arrays (0 or 1: cannot index out of bounds).
const fn side(end: usize) -> usize {
    end & 1
}

/// The other end.
const fn other(end: usize) -> usize {
    (end & 1) ^ 1
}

/// One connection: end 0 connected (sent the REQUEST), end 1 listens.
#[derive(Clone, Copy, Debug)]
struct Connection {
    /// Cell index and port of each end.
    ends: [(usize, u32); 2],
    flow: usize,
    state: State,
    /// SHUTDOWN flags each end has sent.
    shutdown: [u32; 2],
    /// Each end's last advertised buf_alloc and fwd_cnt.
    buf_alloc: [u32; 2],
    fwd_cnt: [u32; 2],
    /// RW bytes forwarded from each end (wrapping, as Linux's tx_cnt).
    sent: [u32; 2],
    /// Whether each end has seen a packet of the connection (end 0 sent the REQUEST).
    known: [bool; 2],
}

impl Connection {
    /// The credit end `to` gave: what the other end may still send.
    fn credit_to(&self, to: usize) -> u32 {
        let from = other(to);
        let window = self.buf_alloc[side(to)];
        let in_flight = self.sent[side(from)].wrapping_sub(self.fwd_cnt[side(to)]);
        window.saturating_sub(in_flight)
    }

    fn matches(&self, cell: usize, port: u32, peer: usize, peer_port: u32) -> Option<usize> {
        if self.ends == [(cell, port), (peer, peer_port)] {
            Some(0)
        } else if self.ends == [(peer, peer_port), (cell, port)] {
            Some(1)
        } else {
            None
        }
    }

    fn involves(&self, cell: usize) -> bool {
        self.ends[0].0 == cell || self.ends[1].0 == cell
    }

    /// Whether `packet`, queued for end `end`'s cell, belongs to this connection (`peer_cid`:
    /// the other end's CID).
    fn carries(&self, packet: &Queued, end: usize, peer_cid: u64) -> bool {
        let (_, port) = self.ends[side(end)];
        let (_, peer_port) = self.ends[other(end)];
        packet.header.src_cid == peer_cid
            && packet.header.src_port == peer_port
            && packet.header.dst_port == port
    }
}

/// The switch core: the connection table, the cells' receive queues and the policy.
#[derive(Clone, Debug)]
pub struct VsockSwitch {
    cells: Vec<CellState>,
    policy: Policy,
    flows: Vec<FlowState>,
    connections: Vec<Connection>,
    /// The last [`RECENT_RESETS`] connections closed by a reset, oldest first: their ends, and
    /// which of them are excused for what they still send (not the end that caused the reset).
    recent_resets: VecDeque<RecentReset>,
    now_ms: u64,
}

impl VsockSwitch {
    /// A switch between `cells` (name and guest CID each; a CID given twice, or below 3, makes
    /// later entries unreachable) under `policy`. The clock starts at 0 and no cell is focused.
    pub fn new(cells: &[(&'static str, u64)], policy: Policy) -> Self {
        let cells: Vec<CellState> = cells
            .iter()
            .map(|&(name, cid)| CellState {
                name,
                cid,
                focused: false,
                queue: VecDeque::new(),
                queued_bytes: 0,
                woken: false,
                stats: CellStats::default(),
                last_refusal: None,
                enabled: true,
                attached: true,
            })
            .collect();
        let index = |name: &str| cells.iter().position(|cell| cell.name == name);
        let flows = policy
            .flows
            .iter()
            .map(|flow| FlowState {
                from: index(flow.from),
                to: index(flow.to),
                tokens: u64::from(flow.rate_per_second).saturating_mul(1000),
                filled_at: 0,
                stats: FlowStats::default(),
            })
            .collect();
        Self {
            cells,
            policy,
            flows,
            connections: Vec::new(),
            recent_resets: VecDeque::new(),
            now_ms: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sets the clock (milliseconds, from the caller's monotonic counter); a clock that goes
    /// back is taken as not moving.
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Tells the switch whether cell `cid` is focused (in front).
    pub fn set_focused(&mut self, cid: u64, focused: bool) {
        if let Some(cell) = self
            .cell_index(cid)
            .and_then(|index| self.cells.get_mut(index))
        {
            cell.focused = focused;
        }
    }

    /// The kill switch: with `enabled` false, every connection of cell `cid` is reset (both
    /// ends get an RST, the cell itself too: it keeps running), every data packet from or to it
    /// still queued is dropped, and everything it sends or is sent is refused until it is
    /// enabled again. Returns the connections reset.
    pub fn set_enabled(&mut self, cid: u64, enabled: bool) -> usize {
        let Some(index) = self.cell_index(cid) else {
            return 0;
        };
        if let Some(cell) = self.cells.get_mut(index) {
            cell.enabled = enabled;
        }
        if enabled {
            return 0;
        }
        // Unlike a stop, the cell lives on: both ends of each connection get their RST.
        let mut reset = 0usize;
        while let Some(at) = self.connections.iter().position(|c| c.involves(index)) {
            self.tear_down(at, None, None);
            reset += 1;
        }
        for (position, state) in self.cells.iter_mut().enumerate() {
            if position == index {
                state.purge(|packet| packet.header.op != op::RST);
                state.stats.resets = state.stats.resets.saturating_add(reset as u64);
            } else {
                state.purge(|packet| packet.from == index);
            }
        }
        reset
    }

    /// Whether the channel is on for cell `cid`.
    pub fn enabled(&self, cid: u64) -> bool {
        self.cell(cid).is_some_and(|cell| cell.enabled)
    }

    /// Tells the switch whether cell `cid`'s device has a driver (DRIVER_OK, not failed). A
    /// cell that loses its driver loses its connections ([`VsockSwitch::reset_cell`]); nothing
    /// is queued for a cell without one, a request to it is answered with RST
    /// ([`Refusal::PeerAbsent`]). Cells start attached.
    pub fn set_attached(&mut self, cid: u64, attached: bool) {
        let Some(index) = self.cell_index(cid) else {
            return;
        };
        let was = self.cells.get(index).is_some_and(|cell| cell.attached);
        if let Some(cell) = self.cells.get_mut(index) {
            cell.attached = attached;
        }
        if was && !attached {
            self.reset_cell(cid);
        }
    }

    /// Whether cell `cid`'s device has a driver.
    pub fn attached(&self, cid: u64) -> bool {
        self.cell(cid).is_some_and(|cell| cell.attached)
    }

    /// How many connections cell `cid` is an end of.
    pub fn connections_of(&self, cid: u64) -> usize {
        self.cell_index(cid).map_or(0, |cell| {
            self.connections
                .iter()
                .filter(|connection| connection.involves(cell))
                .count()
        })
    }

    /// How many connections the table holds.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Packets waiting for cell `cid`.
    pub fn queued(&self, cid: u64) -> usize {
        self.cell(cid).map_or(0, |cell| cell.queue.len())
    }

    /// Payload bytes waiting for cell `cid`.
    pub fn queued_bytes(&self, cid: u64) -> usize {
        self.cell(cid).map_or(0, |cell| cell.queued_bytes)
    }

    /// Cell `cid`'s counters.
    pub fn cell_stats(&self, cid: u64) -> Option<CellStats> {
        self.cell(cid).map(|cell| cell.stats)
    }

    /// Each flow of the policy with its counters, in the policy's order.
    pub fn flow_stats(&self) -> impl Iterator<Item = (&Flow, FlowStats)> + '_ {
        self.policy
            .flows
            .iter()
            .zip(self.flows.iter().map(|flow| flow.stats))
    }

    /// Whether packets were queued for `cid` since the last call (the caller then delivers
    /// them and raises the cell's interrupt).
    pub fn take_woken(&mut self, cid: u64) -> bool {
        self.cell_index(cid)
            .and_then(|index| self.cells.get_mut(index))
            .is_some_and(|cell| core::mem::take(&mut cell.woken))
    }

    /// The last refusal or drop of cell `cid`'s packets since the last call, for the caller's
    /// rate-limited log (the counters have them all).
    pub fn take_refusal(&mut self, cid: u64) -> Option<(Refusal, Header)> {
        self.cell_index(cid)
            .and_then(|index| self.cells.get_mut(index))
            .and_then(|cell| cell.last_refusal.take())
    }

    fn cell_index(&self, cid: u64) -> Option<usize> {
        self.cells.iter().position(|cell| cell.cid == cid)
    }

    fn cell(&self, cid: u64) -> Option<&CellState> {
        self.cells.iter().find(|cell| cell.cid == cid)
    }

    fn cid_of(&self, index: usize) -> u64 {
        self.cells.get(index).map_or(0, |cell| cell.cid)
    }

    fn find(&self, cell: usize, port: u32, peer: usize, peer_port: u32) -> Option<(usize, usize)> {
        self.connections
            .iter()
            .enumerate()
            .find_map(|(index, connection)| {
                connection
                    .matches(cell, port, peer, peer_port)
                    .map(|end| (index, end))
            })
    }

    fn remember_reset(&mut self, ends: [(usize, u32); 2], offender: Option<usize>) {
        if self.recent_resets.len() >= RECENT_RESETS {
            self.recent_resets.pop_front();
        }
        self.recent_resets.push_back(RecentReset { ends, offender });
    }

    /// Whether a reset that `cell` did not cause recently closed the connection between
    /// `cell`:`port` and `peer`:`peer_port`.
    fn excused_after_reset(&self, cell: usize, port: u32, peer: usize, peer_port: u32) -> bool {
        let key = [(cell, port), (peer, peer_port)];
        self.recent_resets.iter().any(|reset| {
            let [a, b] = reset.ends;
            ([a, b] == key || [b, a] == key) && reset.offender != Some(cell)
        })
    }

    /// Forgets the recent resets of `cell`:`port` with `peer`:`peer_port` (a new connection
    /// between them), or every one of `cell` (its instance is gone).
    fn forget_resets(&mut self, cell: usize, ends: Option<(u32, usize, u32)>) {
        self.recent_resets.retain(|reset| {
            let [a, b] = reset.ends;
            match ends {
                Some((port, peer, peer_port)) => {
                    let key = [(cell, port), (peer, peer_port)];
                    [a, b] != key && [b, a] != key
                }
                None => a.0 != cell && b.0 != cell,
            }
        });
    }

    fn focus_holds(&self, flow: usize) -> bool {
        let (Some(rule), Some(state)) = (self.policy.flows.get(flow), self.flows.get(flow)) else {
            return false;
        };
        let focused = |cell: Option<usize>| {
            cell.and_then(|index| self.cells.get(index))
                .is_some_and(|cell| cell.focused)
        };
        match rule.only_while_focused {
            FocusRule::None => true,
            FocusRule::Source => focused(state.from),
            FocusRule::Destination => focused(state.to),
        }
    }

    /// Refills flow `flow`'s bucket and says whether one message may pass (without taking it).
    fn rate_allows(&mut self, flow: usize) -> bool {
        let now = self.now_ms;
        let (Some(rule), Some(state)) = (self.policy.flows.get(flow), self.flows.get_mut(flow))
        else {
            return false;
        };
        let rate = u64::from(rule.rate_per_second);
        let elapsed = now.saturating_sub(state.filled_at);
        state.tokens = state
            .tokens
            .saturating_add(elapsed.saturating_mul(rate))
            .min(rate.saturating_mul(1000));
        state.filled_at = now;
        state.tokens >= 1000
    }

    fn take_token(&mut self, flow: usize) {
        if let Some(state) = self.flows.get_mut(flow) {
            state.tokens = state.tokens.saturating_sub(1000);
        }
    }

    fn count(
        &mut self,
        sender: usize,
        flow: Option<usize>,
        why: Refusal,
        header: &Header,
        answered: bool,
    ) {
        if let Some(cell) = self.cells.get_mut(sender) {
            if answered {
                cell.stats.refusals = cell.stats.refusals.saturating_add(1);
            } else {
                cell.stats.dropped = cell.stats.dropped.saturating_add(1);
            }
            cell.last_refusal = Some((why, *header));
        }
        if let Some(state) = flow.and_then(|flow| self.flows.get_mut(flow)) {
            state.stats.refusals = state.stats.refusals.saturating_add(1);
        }
    }

    /// Queues a switch-made packet for cell `to` (control reserve); counted as lost when full.
    fn push_control(&mut self, to: usize, header: Header) {
        let Some(cell) = self.cells.get_mut(to) else {
            return;
        };
        if cell.control_room() {
            cell.push(Queued {
                header,
                payload: Vec::new(),
                offset: 0,
                from: usize::MAX,
                control: true,
            });
        } else {
            cell.stats.resets_lost = cell.stats.resets_lost.saturating_add(1);
        }
    }

    /// Removes connection `index`: drops what waits of it on both sides and sends an RST to
    /// each end that knows of it, except `spare` (an end that is being reset itself).
    /// `offender` is the cell whose packet caused it, if one did.
    fn tear_down(&mut self, index: usize, spare: Option<usize>, offender: Option<usize>) {
        if index >= self.connections.len() {
            return;
        }
        let connection = self.connections.swap_remove(index);
        self.remember_reset(connection.ends, offender);
        for end in 0..2 {
            let (cell, port) = connection.ends[side(end)];
            let (peer, peer_port) = connection.ends[other(end)];
            let peer_cid = self.cid_of(peer);
            if let Some(state) = self.cells.get_mut(cell) {
                state.purge(|packet| connection.carries(packet, end, peer_cid));
            }
            if connection.known[side(end)] && spare != Some(cell) {
                let header = Header {
                    src_cid: peer_cid,
                    dst_cid: self.cid_of(cell),
                    src_port: peer_port,
                    dst_port: port,
                    kind: TYPE_STREAM,
                    op: op::RST,
                    ..Header::default()
                };
                self.push_control(cell, header);
            }
        }
    }

    /// Refuses `header` from cell `sender`: the connection it belongs to (if any) is torn down
    /// with an RST to both ends, else the sender gets an RST (none for an RST).
    fn refuse(&mut self, sender: usize, header: &Header, why: Refusal) -> Verdict {
        let peer = self.cell_index(header.dst_cid);
        let found = peer.and_then(|peer| self.find(sender, header.src_port, peer, header.dst_port));
        let flow = found.and_then(|(index, _)| self.connections.get(index).map(|c| c.flow));
        self.count(sender, flow, why, header, true);
        if let Some((index, _)) = found {
            self.tear_down(index, None, Some(sender));
        } else if header.op != op::RST {
            self.push_control(sender, header.reset_reply());
        }
        Verdict::Refused(why)
    }

    fn drop_packet(&mut self, sender: usize, header: &Header, why: Refusal) -> Verdict {
        self.count(sender, None, why, header, false);
        Verdict::Dropped(why)
    }

    /// Forwards `header` and `payload` to cell `to`.
    fn forward(&mut self, from: usize, to: usize, header: &Header, payload: &[u8]) {
        let header = *header;
        if let Some(cell) = self.cells.get_mut(to) {
            cell.push(Queued {
                header,
                payload: payload.to_vec(),
                offset: 0,
                from,
                control: false,
            });
        }
    }

    fn has_data_room(&self, to: usize, bytes: usize) -> bool {
        self.cells.get(to).is_some_and(|cell| cell.data_room(bytes))
    }

    /// The checks before any other of a packet from the device of `from_cid`: its sender's
    /// index, or the verdict (an unknown device, a spoofed source CID, no room for an answer).
    fn admit(&mut self, from_cid: u64, header: &Header) -> Result<usize, Verdict> {
        let Some(sender) = self.cell_index(from_cid) else {
            return Err(Verdict::Dropped(Refusal::UnknownSender));
        };
        if header.src_cid != from_cid {
            return Err(self.drop_packet(sender, header, Refusal::SpoofedSource));
        }
        // Every answer the switch may give goes to the sender's own queue: without room for
        // one the sender waits (for its own driver to take what it was sent).
        if !self.cells.get(sender).is_some_and(CellState::control_room) {
            return Err(Verdict::Busy);
        }
        Ok(sender)
    }

    /// The core of [`Switch::route`].
    fn route_packet(&mut self, from_cid: u64, header: &Header, payload: &[u8]) -> Verdict {
        let sender = match self.admit(from_cid, header) {
            Ok(sender) => sender,
            Err(verdict) => return verdict,
        };
        if payload.len() != header.len as usize
            || (header.op != op::RW && header.len != 0)
            || header.len > MAX_PAYLOAD
        {
            return self.refuse(sender, header, Refusal::Malformed);
        }
        if header.kind != TYPE_STREAM {
            return self.refuse(sender, header, Refusal::BadType);
        }
        let Some(peer) = self
            .cell_index(header.dst_cid)
            .filter(|&peer| peer != sender)
        else {
            if header.op == op::RST {
                return self.drop_packet(sender, header, Refusal::StrayReset);
            }
            return self.refuse(sender, header, Refusal::UnknownCid);
        };
        let switched_off = |cell: usize| self.cells.get(cell).is_none_or(|cell| !cell.enabled);
        let closed = if switched_off(sender) || switched_off(peer) {
            Some(Refusal::ChannelOff)
        } else if self.cells.get(peer).is_none_or(|cell| !cell.attached) {
            Some(Refusal::PeerAbsent)
        } else {
            None
        };
        if let Some(why) = closed {
            // Neither end has a connection left (switching off or detaching reset them all).
            if header.op == op::RST {
                return self.drop_packet(sender, header, Refusal::StrayReset);
            }
            return self.refuse(sender, header, why);
        }
        let found = self.find(sender, header.src_port, peer, header.dst_port);
        match header.op {
            op::REQUEST => {
                if found.is_some() {
                    return self.refuse(sender, header, Refusal::DuplicateRequest);
                }
                self.request(sender, peer, header)
            }
            op::RST => {
                let Some((index, end)) = found else {
                    return self.drop_packet(sender, header, Refusal::StrayReset);
                };
                if !self.has_data_room(peer, 0) {
                    return Verdict::Busy;
                }
                let known = self
                    .connections
                    .get(index)
                    .is_some_and(|c| c.known[other(end)]);
                let closed = self.connections.swap_remove(index);
                self.remember_reset(closed.ends, Some(sender));
                if known {
                    self.forward(sender, peer, header, &[]);
                } else if let Some(cell) = self.cells.get_mut(peer) {
                    // The peer never saw the connection: take back what waits of it.
                    cell.purge(|packet| {
                        packet.from == sender
                            && packet.header.src_port == header.src_port
                            && packet.header.dst_port == header.dst_port
                    });
                }
                Verdict::Forwarded
            }
            _ => {
                let Some((index, end)) = found else {
                    if self.excused_after_reset(sender, header.src_port, peer, header.dst_port) {
                        // Crossed the reset: answered as any packet of a closed connection, but
                        // not the sender's fault, so neither counted nor logged.
                        self.push_control(sender, header.reset_reply());
                        return Verdict::Refused(Refusal::AfterReset);
                    }
                    return self.refuse(sender, header, Refusal::NoConnection);
                };
                self.on_connection(sender, peer, index, end, header, payload)
            }
        }
    }

    fn request(&mut self, sender: usize, peer: usize, header: &Header) -> Verdict {
        let sender_name = self.cells.get(sender).map(|cell| cell.name);
        let peer_name = self.cells.get(peer).map(|cell| cell.name);
        let Some(flow) = self.policy.flows.iter().position(|flow| {
            Some(flow.from) == sender_name
                && Some(flow.to) == peer_name
                && flow.port == header.dst_port
        }) else {
            return self.refuse(sender, header, Refusal::NoFlow);
        };
        let refuse_on_flow = |switch: &mut Self, why| {
            switch.count(sender, Some(flow), why, header, true);
            switch.push_control(sender, header.reset_reply());
            Verdict::Refused(why)
        };
        if !self.focus_holds(flow) {
            return refuse_on_flow(self, Refusal::NotFocused);
        }
        let per_cell = |cell: usize| self.connections.iter().filter(|c| c.involves(cell)).count();
        let per_pair = self
            .connections
            .iter()
            .filter(|c| c.involves(sender) && c.involves(peer))
            .count();
        if self.connections.len() >= MAX_CONNECTIONS
            || per_cell(sender) >= MAX_CELL_CONNECTIONS
            || per_cell(peer) >= MAX_CELL_CONNECTIONS
            || per_pair >= MAX_PAIR_CONNECTIONS
        {
            return refuse_on_flow(self, Refusal::TableFull);
        }
        if !self.rate_allows(flow) {
            return refuse_on_flow(self, Refusal::RateExceeded);
        }
        if !self.has_data_room(peer, 0) {
            return Verdict::Busy;
        }
        self.take_token(flow);
        self.forget_resets(sender, Some((header.src_port, peer, header.dst_port)));
        self.connections.push(Connection {
            ends: [(sender, header.src_port), (peer, header.dst_port)],
            flow,
            state: State::Requested,
            shutdown: [0; 2],
            buf_alloc: [header.buf_alloc, 0],
            fwd_cnt: [header.fwd_cnt, 0],
            sent: [0; 2],
            known: [true, false],
        });
        if let Some(state) = self.flows.get_mut(flow) {
            state.stats.connections = state.stats.connections.saturating_add(1);
        }
        self.forward(sender, peer, header, &[]);
        Verdict::Forwarded
    }

    fn on_connection(
        &mut self,
        sender: usize,
        peer: usize,
        index: usize,
        end: usize,
        header: &Header,
        payload: &[u8],
    ) -> Verdict {
        let Some(connection) = self.connections.get(index).copied() else {
            return self.refuse(sender, header, Refusal::NoConnection);
        };
        let flow = connection.flow;
        let established = connection.state == State::Established;
        match header.op {
            op::RESPONSE if end == 1 && !established => {}
            op::SHUTDOWN | op::CREDIT_UPDATE | op::CREDIT_REQUEST if established => {}
            op::RW if established => {
                if connection.shutdown[side(end)] & SHUTDOWN_SEND != 0 {
                    return self.refuse(sender, header, Refusal::Protocol);
                }
                if header.len == 0 {
                    return self.drop_packet(sender, header, Refusal::Malformed);
                }
                let limit = self
                    .policy
                    .flows
                    .get(flow)
                    .map_or(0, |flow| flow.max_message);
                if header.len > limit {
                    return self.refuse(sender, header, Refusal::MessageTooLarge);
                }
                if !self.focus_holds(flow) {
                    return self.refuse(sender, header, Refusal::NotFocused);
                }
                if header.len > connection.credit_to(other(end)) {
                    return self.refuse(sender, header, Refusal::CreditExceeded);
                }
                if !self.rate_allows(flow) {
                    return self.refuse(sender, header, Refusal::RateExceeded);
                }
            }
            op::REQUEST..=op::CREDIT_REQUEST => {
                return self.refuse(sender, header, Refusal::Protocol);
            }
            _ => return self.drop_packet(sender, header, Refusal::UnknownOp),
        }
        if header.op == op::CREDIT_REQUEST {
            // The switch answers with the peer's last advertised credit.
            let answer = Header {
                src_cid: header.dst_cid,
                dst_cid: header.src_cid,
                src_port: header.dst_port,
                dst_port: header.src_port,
                kind: TYPE_STREAM,
                op: op::CREDIT_UPDATE,
                buf_alloc: connection.buf_alloc[other(end)],
                fwd_cnt: connection.fwd_cnt[other(end)],
                ..Header::default()
            };
            if let Some(connection) = self.connections.get_mut(index) {
                connection.buf_alloc[side(end)] = header.buf_alloc;
                connection.fwd_cnt[side(end)] = header.fwd_cnt;
            }
            self.push_control(sender, answer);
            return Verdict::Answered;
        }
        if !self.has_data_room(peer, payload.len()) {
            return Verdict::Busy;
        }
        if header.op == op::RW {
            self.take_token(flow);
            if let Some(state) = self.flows.get_mut(flow) {
                state.stats.packets = state.stats.packets.saturating_add(1);
                state.stats.bytes = state.stats.bytes.saturating_add(u64::from(header.len));
            }
        }
        if let Some(connection) = self.connections.get_mut(index) {
            connection.buf_alloc[side(end)] = header.buf_alloc;
            connection.fwd_cnt[side(end)] = header.fwd_cnt;
            match header.op {
                op::RESPONSE => connection.state = State::Established,
                op::SHUTDOWN => {
                    connection.shutdown[side(end)] |= header.flags & (SHUTDOWN_RCV | SHUTDOWN_SEND)
                }
                op::RW => {
                    connection.sent[side(end)] = connection.sent[side(end)].wrapping_add(header.len)
                }
                _ => {}
            }
        }
        self.forward(sender, peer, header, payload);
        Verdict::Forwarded
    }

    /// The kill switch (and what a wipe or restart of the cell must call): resets every
    /// connection of cell `cid` (each peer that knew of one gets an RST), and drops every
    /// packet queued for the cell or sent by it, so none of its half-sent data arrives later.
    /// Returns how many connections were reset.
    pub fn reset_cell(&mut self, cid: u64) -> usize {
        let Some(cell) = self.cell_index(cid) else {
            return 0;
        };
        let mut reset = 0usize;
        while let Some(index) = self.connections.iter().position(|c| c.involves(cell)) {
            self.tear_down(index, Some(cell), None);
            reset += 1;
        }
        // Nothing of this instance stays: its peers' late packets meet a detached device (or the
        // next instance, which never had these connections).
        self.forget_resets(cell, None);
        for (index, state) in self.cells.iter_mut().enumerate() {
            if index == cell {
                state.purge(|_| true);
                state.woken = false;
                state.stats.resets = state.stats.resets.saturating_add(reset as u64);
            } else {
                state.purge(|packet| packet.from == cell);
            }
        }
        reset
    }

    /// The core of [`Switch::next_rx`].
    fn take_rx(&mut self, cid: u64, max_payload: u32) -> Option<(Header, Vec<u8>)> {
        let cell = self.cell_index(cid)?;
        let state = self.cells.get_mut(cell)?;
        let front = state.queue.front_mut()?;
        let remaining = front.remaining();
        if remaining > 0 && max_payload == 0 {
            return None;
        }
        let take = remaining.min(max_payload as usize);
        let end = front.offset.checked_add(take)?;
        let chunk = front.payload.get(front.offset..end)?.to_vec();
        let mut header = front.header;
        header.len = take as u32;
        front.offset = end;
        if front.remaining() == 0 {
            state.queue.pop_front();
        }
        state.queued_bytes = state.queued_bytes.saturating_sub(take);
        state.stats.delivered_packets = state.stats.delivered_packets.saturating_add(1);
        state.stats.delivered_bytes = state.stats.delivered_bytes.saturating_add(take as u64);
        // The receiving end now knows of the connection.
        if let Some(peer) = self.cell_index(header.src_cid)
            && let Some((index, end)) = self.find(cell, header.dst_port, peer, header.src_port)
            && let Some(connection) = self.connections.get_mut(index)
        {
            connection.known[side(end)] = true;
        }
        Some((header, chunk))
    }
}

impl Switch for VsockSwitch {
    fn route(&mut self, from_cid: u64, header: &Header, payload: &[u8]) -> Verdict {
        self.route_packet(from_cid, header, payload)
    }

    fn malformed(&mut self, from_cid: u64, header: &Header) -> Verdict {
        match self.admit(from_cid, header) {
            Ok(sender) => self.refuse(sender, header, Refusal::Malformed),
            Err(verdict) => verdict,
        }
    }

    fn has_rx(&self, cid: u64) -> bool {
        self.cell(cid).is_some_and(|cell| !cell.queue.is_empty())
    }

    fn next_rx(&mut self, cid: u64, max_payload: u32) -> Option<(Header, Vec<u8>)> {
        self.take_rx(cid, max_payload)
    }
}

/// A tx packet the switch could not take yet, with the chain it came in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stalled {
    head: u16,
    header: Header,
    payload: Vec<u8>,
    malformed: bool,
}

/// Counters of one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// tx packets taken from the guest.
    pub transmitted: u64,
    /// tx packets too short for a header (dropped: there is nobody to answer).
    pub runts: u64,
    /// tx packets whose `len` could not be trusted.
    pub malformed: u64,
    /// rx buffers filled.
    pub received: u64,
}

/// One cell's virtio socket device. Queue work needs the [`Switch`], so a notification only
/// records that work is due ([`VsockDevice::take_kick`]); the caller, holding the switch, then
/// runs [`VsockDevice::service`] (through [`VirtioMmio::run`], or
/// `VirtioMmio::<VsockDevice>::service`).
#[derive(Clone, Debug)]
pub struct VsockDevice {
    cid: u64,
    stalled: Option<Stalled>,
    kicked: bool,
    was_reset: bool,
    stats: DeviceStats,
}

impl VsockDevice {
    /// A device presenting guest CID `cid` (the board's).
    pub fn new(cid: u64) -> Self {
        Self {
            cid,
            stalled: None,
            kicked: false,
            was_reset: false,
            stats: DeviceStats::default(),
        }
    }

    /// The guest CID.
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// The device's counters.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// Whether a tx packet is held back (its receiver's queue was full).
    pub fn stalled(&self) -> bool {
        self.stalled.is_some()
    }

    /// Whether the driver notified a queue since the last call (the caller then runs
    /// [`VsockDevice::service`]).
    pub fn take_kick(&mut self) -> bool {
        core::mem::take(&mut self.kicked)
    }

    /// Whether the device was reset since the last call (the caller then calls
    /// [`VsockSwitch::reset_cell`] for it: a driver that resets its device has lost every
    /// connection).
    pub fn take_reset(&mut self) -> bool {
        core::mem::take(&mut self.was_reset)
    }

    /// Offers `stalled` to the switch again; `true` when it was taken (its chain is returned).
    fn offer(
        &mut self,
        stalled: Stalled,
        txq: &mut Virtqueue,
        memory: &mut dyn GuestMemory,
        switch: &mut dyn Switch,
    ) -> Result<bool, VirtioError> {
        let verdict = if stalled.malformed {
            switch.malformed(self.cid, &stalled.header)
        } else {
            switch.route(self.cid, &stalled.header, &stalled.payload)
        };
        if verdict == Verdict::Busy {
            self.stalled = Some(stalled);
            return Ok(false);
        }
        txq.push_used(memory, stalled.head, 0)?;
        Ok(true)
    }

    /// Takes the guest's tx packets (at most the queue size of them) and hands each to
    /// `switch`, stopping at one the switch cannot take yet. `Ok(true)`: tx buffers were used.
    pub fn transmit(
        &mut self,
        queues: &mut [Virtqueue],
        memory: &mut dyn GuestMemory,
        switch: &mut dyn Switch,
    ) -> Result<bool, VirtioError> {
        let txq = queues.get_mut(TXQ).ok_or(VirtioError::NoSuchQueue)?;
        if !txq.ready() {
            return Ok(false);
        }
        let mut used = false;
        if let Some(stalled) = self.stalled.take() {
            if !self.offer(stalled, txq, memory, switch)? {
                return Ok(false);
            }
            used = true;
        }
        for _ in 0..txq.size() {
            let Some(chain) = txq.pop(memory)? else {
                break;
            };
            if chain.writable_len() != 0 {
                return Err(VirtioError::UnexpectedWritable);
            }
            self.stats.transmitted = self.stats.transmitted.saturating_add(1);
            let readable = (chain.readable_len() as usize).min(HEADER_SIZE + MAX_PAYLOAD as usize);
            let mut buffer = vec![0u8; readable];
            let read = chain.read_all(memory, &mut buffer)?;
            let Some(header) = buffer.get(..read).and_then(Header::parse) else {
                self.stats.runts = self.stats.runts.saturating_add(1);
                txq.push_used(memory, chain.head(), 0)?;
                used = true;
                continue;
            };
            let end = HEADER_SIZE.checked_add(header.len as usize);
            let payload = end.filter(|_| header.len <= MAX_PAYLOAD).and_then(|end| {
                buffer
                    .get(HEADER_SIZE..end.min(read))
                    .filter(|p| p.len() == header.len as usize)
            });
            let stalled = match payload {
                Some(payload) => Stalled {
                    head: chain.head(),
                    header,
                    payload: payload.to_vec(),
                    malformed: false,
                },
                None => {
                    self.stats.malformed = self.stats.malformed.saturating_add(1);
                    Stalled {
                        head: chain.head(),
                        header,
                        payload: Vec::new(),
                        malformed: true,
                    }
                }
            };
            drop(buffer);
            if !self.offer(stalled, txq, memory, switch)? {
                break;
            }
            used = true;
        }
        Ok(used)
    }

    /// Writes the packets `switch` holds for this cell into the rx buffers the guest posted
    /// (at most the queue size of them): each device-writable chain of at least
    /// [`HEADER_SIZE`] bytes takes one header and as much payload as fits (a longer RW packet
    /// continues in the next buffer). A chain with device-readable buffers, or too short for
    /// the header, is an error. `Ok(true)`: rx buffers were used.
    pub fn deliver(
        &mut self,
        rxq: &mut Virtqueue,
        memory: &mut dyn GuestMemory,
        switch: &mut dyn Switch,
    ) -> Result<bool, VirtioError> {
        if !rxq.ready() {
            return Ok(false);
        }
        let mut used = false;
        for _ in 0..rxq.size() {
            if !switch.has_rx(self.cid) {
                break;
            }
            let Some(chain) = rxq.pop(memory)? else {
                break;
            };
            if chain.readable_len() != 0 {
                return Err(VirtioError::UnexpectedReadable);
            }
            let room = chain.writable_len() as usize;
            let Some(capacity) = room.checked_sub(HEADER_SIZE) else {
                return Err(VirtioError::BufferTooShort);
            };
            let capacity = u32::try_from(capacity).unwrap_or(u32::MAX).min(MAX_PAYLOAD);
            let Some((header, payload)) = switch.next_rx(self.cid, capacity) else {
                return Err(VirtioError::BufferTooShort);
            };
            let mut bytes = Vec::with_capacity(HEADER_SIZE + payload.len());
            bytes.extend_from_slice(&header.to_bytes());
            bytes.extend_from_slice(&payload);
            let written = chain.write_all(memory, &bytes)?;
            rxq.push_used(memory, chain.head(), written as u32)?;
            self.stats.received = self.stats.received.saturating_add(1);
            used = true;
        }
        Ok(used)
    }

    /// [`VsockDevice::transmit`], then [`VsockDevice::deliver`] on the rx queue of `queues`.
    pub fn service(
        &mut self,
        queues: &mut [Virtqueue],
        memory: &mut dyn GuestMemory,
        switch: &mut dyn Switch,
    ) -> Result<bool, VirtioError> {
        let sent = self.transmit(queues, memory, switch)?;
        let rxq = queues.get_mut(RXQ).ok_or(VirtioError::NoSuchQueue)?;
        let received = self.deliver(rxq, memory, switch)?;
        Ok(sent || received)
    }
}

impl VirtioDevice for VsockDevice {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_count(&self) -> usize {
        3
    }

    fn config_read(&self, offset: u64, width: AccessWidth) -> u32 {
        let bytes = self.cid.to_le_bytes();
        (0..width.bytes().min(4)).fold(0u32, |value, lane| {
            let byte = offset
                .checked_add(lane)
                .and_then(|at| usize::try_from(at).ok())
                .and_then(|at| bytes.get(at))
                .copied()
                .unwrap_or(0);
            value | (u32::from(byte) << (8 * lane))
        })
    }

    fn config_write(&mut self, _offset: u64, _width: AccessWidth, _value: u32) {}

    fn notify(
        &mut self,
        queue: usize,
        _queues: &mut [Virtqueue],
        _memory: &mut dyn GuestMemory,
    ) -> Result<bool, VirtioError> {
        match queue {
            RXQ | TXQ => {
                self.kicked = true;
                Ok(false)
            }
            // Event buffers are kept: cellvisor sends no transport events.
            EVENTQ => Ok(false),
            _ => Err(VirtioError::NoSuchQueue),
        }
    }

    fn reset(&mut self) {
        self.stalled = None;
        self.kicked = false;
        self.was_reset = true;
    }
}

impl VirtioMmio<VsockDevice> {
    /// Runs the device's queue work against `switch` (if the device is live): its tx packets
    /// go to the switch, the switch's packets for it into its rx buffers. Returns whether used
    /// buffers were added (the caller then drives the interrupt line from
    /// [`VirtioMmio::interrupt_level`]).
    pub fn service(&mut self, memory: &mut dyn GuestMemory, switch: &mut dyn Switch) -> bool {
        self.run(memory, |device, queues, memory| {
            device.service(queues, memory, switch)
        })
    }
}

#[cfg(test)]
#[path = "vsock_tests.rs"]
mod tests;
