//! The statement meter of Q6 and Q6x: a TCP relay on `127.0.0.1` between ONE scheduler's
//! connections and the server, which counts the commands the scheduler sends, so an idle
//! worker's statements are counted exactly, whatever else the server runs at the time and
//! whether or not the server has `performance_schema` on.
//!
//! The relay copies bytes both ways unchanged and reads only the MySQL protocol's packet
//! headers (3 bytes of length, 1 of sequence number) and the first bytes of each packet. A
//! packet the client sends with sequence number 0 starts a command (the handshake's packets
//! and the continuations of packets over 16 MiB have others; the connection is neither
//! compressed nor TLS: `zart-mysql` builds mysql_async without either). Commands are counted
//! as:
//!
//! - **statements**: `COM_QUERY` (text protocol) and `COM_STMT_EXECUTE` /
//!   `COM_STMT_BULK_EXECUTE` (a prepared statement run), each one round trip the server runs
//!   a statement for. Each is classified by its SQL text (for an execute, the text of the
//!   statement it was prepared from, taken from the `COM_STMT_PREPARE` before it and the
//!   statement id in the server's answer): **the change probe** (exactly
//!   [`zart_mysql::queries::CHANGE_PROBE`], the cross-process wake-up poll), **on Zart's
//!   tables** (any other text naming a `zart_` table), or **other** (`start transaction`,
//!   `commit`, the clock read, session set-up);
//! - **protocol**: every other command (`COM_STMT_PREPARE`, `COM_STMT_CLOSE`, `COM_PING`,
//!   `COM_QUIT`, `COM_RESET_CONNECTION`, ...): round trips that run no statement.
//!
//! Connections opened through the relay are counted too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How much of a packet's payload is kept to classify it (the command byte and the start of
/// its SQL text; Zart's statements name their table well before this).
const CAPTURE: usize = 64 * 1024;

/// `COM_QUERY`.
const COM_QUERY: u8 = 0x03;
/// `COM_STMT_PREPARE`.
const COM_STMT_PREPARE: u8 = 0x16;
/// `COM_STMT_EXECUTE`.
const COM_STMT_EXECUTE: u8 = 0x17;
/// `COM_STMT_CLOSE`.
const COM_STMT_CLOSE: u8 = 0x19;
/// MariaDB's `COM_STMT_BULK_EXECUTE`.
const COM_STMT_BULK_EXECUTE: u8 = 0xfa;

/// What a statement is, by its SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The cross-process change probe.
    Probe,
    /// Another statement naming a `zart_` table.
    Zart,
    /// Transaction control, the clock, session set-up.
    Other,
}

/// Classifies SQL text (possibly cut short at [`CAPTURE`] bytes).
fn classify(sql: &[u8]) -> Kind {
    let text = String::from_utf8_lossy(sql);
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    if words(&text) == words(zart_mysql::queries::CHANGE_PROBE) {
        Kind::Probe
    } else if text.to_ascii_lowercase().contains("zart_") {
        Kind::Zart
    } else {
        Kind::Other
    }
}

/// The counters, shared by the relay's connections.
#[derive(Debug, Default)]
struct Counters {
    probes: AtomicU64,
    zart: AtomicU64,
    other: AtomicU64,
    protocol: AtomicU64,
    connections: AtomicU64,
}

impl Counters {
    fn statement(&self, kind: Kind) {
        let counter = match kind {
            Kind::Probe => &self.probes,
            Kind::Zart => &self.zart,
            Kind::Other => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What went through the relay so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MeterCounts {
    /// Statements run (queries and prepared-statement executions), all kinds.
    pub statements: u64,
    /// Of those, the change probe.
    pub probes: u64,
    /// Of those, others on Zart's tables.
    pub zart_tables: u64,
    /// Of those, the rest (transaction control, the clock, session set-up).
    pub other: u64,
    /// Commands that run no statement (prepare, close, ping, quit, reset, ...).
    pub protocol: u64,
    /// Connections opened.
    pub connections: u64,
}

impl MeterCounts {
    /// The counts as numbers, in the order [`MeterCounts::from_numbers`] reads.
    pub fn numbers(&self) -> [u64; 5] {
        [
            self.probes,
            self.zart_tables,
            self.other,
            self.protocol,
            self.connections,
        ]
    }

    /// The counts from [`MeterCounts::numbers`]; `None` for a slice of another length.
    pub fn from_numbers(n: &[u64]) -> Option<MeterCounts> {
        match *n {
            [probes, zart_tables, other, protocol, connections] => Some(MeterCounts {
                statements: probes + zart_tables + other,
                probes,
                zart_tables,
                other,
                protocol,
                connections,
            }),
            _ => None,
        }
    }
}

/// A relay on `127.0.0.1:<port>` to the server, counting what goes through it; stopped (with
/// its connections) when dropped.
pub struct Meter {
    port: u16,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl Meter {
    /// Listens on a free loopback port and relays each connection to `upstream`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(upstream: (String, u16)) -> Result<Meter> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the statement meter's port")?;
        let port = listener.local_addr()?.port();
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept(listener, upstream, counters.clone()));
        Ok(Meter {
            port,
            counters,
            accept,
        })
    }

    /// The port to connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What went through so far.
    pub fn counts(&self) -> MeterCounts {
        let c = &self.counters;
        MeterCounts::from_numbers(&[
            c.probes.load(Ordering::Relaxed),
            c.zart.load(Ordering::Relaxed),
            c.other.load(Ordering::Relaxed),
            c.protocol.load(Ordering::Relaxed),
            c.connections.load(Ordering::Relaxed),
        ])
        .unwrap_or_default()
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts connections and relays each on a task of a set that ends with this task.
async fn accept(listener: TcpListener, upstream: (String, u16), counters: Arc<Counters>) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    // Out of descriptors, say: try again a little later.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                counters.connections.fetch_add(1, Ordering::Relaxed);
                relays.spawn(relay(client, upstream.clone(), counters.clone()));
            }
            Some(_) = relays.join_next() => {}
        }
    }
}

/// One connection's prepared statements, shared by its two directions.
#[derive(Debug, Default)]
struct Session {
    /// The kind of the statement whose `COM_STMT_PREPARE` awaits the server's answer.
    preparing: Option<Kind>,
    /// Statement id to kind.
    prepared: HashMap<u32, Kind>,
}

/// Relays one connection until either side closes it (a failure to reach the server closes
/// the client's, which the scheduler reports).
async fn relay(client: TcpStream, upstream: (String, u16), counters: Arc<Counters>) {
    let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let session = Arc::new(Mutex::new(Session::default()));
    let up = {
        let session = session.clone();
        pump(client_read, server_write, move |seq, payload| {
            if seq == 0 {
                command(&counters, &session, payload);
            }
        })
    };
    let down = pump(server_read, client_write, move |seq, payload| {
        if seq == 1 {
            answer(&session, payload);
        }
    });
    // Either side closing ends the other (its half is dropped with it).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Counts one command the client sent.
fn command(counters: &Counters, session: &Mutex<Session>, payload: &[u8]) {
    let mut session = session
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match payload.first().copied() {
        Some(COM_QUERY) => counters.statement(classify(&payload[1..])),
        Some(COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE) => {
            let kind = statement_id(payload)
                .and_then(|id| session.prepared.get(&id).copied())
                .unwrap_or(Kind::Other);
            counters.statement(kind);
        }
        Some(COM_STMT_PREPARE) => {
            session.preparing = Some(classify(&payload[1..]));
            counters.protocol.fetch_add(1, Ordering::Relaxed);
        }
        Some(COM_STMT_CLOSE) => {
            if let Some(id) = statement_id(payload) {
                session.prepared.remove(&id);
            }
            counters.protocol.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            counters.protocol.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads the first packet of the server's answer to a command: after a `COM_STMT_PREPARE`,
/// an OK (`0x00`) carries the new statement's id.
fn answer(session: &Mutex<Session>, payload: &[u8]) {
    let mut session = session
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(kind) = session.preparing.take() {
        if payload.first() == Some(&0) {
            if let Some(id) = statement_id(payload) {
                session.prepared.insert(id, kind);
            }
        }
    }
}

/// The 4-byte statement id after a packet's first byte.
fn statement_id(payload: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = payload.get(1..5)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// Copies `from` to `to`, showing each complete packet (sequence number and the first
/// [`CAPTURE`] bytes of its payload) to `on_packet` before the bytes that complete it are
/// passed on; then shuts `to` down.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut on_packet: impl FnMut(u8, &[u8]),
) -> std::io::Result<()> {
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        framer.feed(&buf[..n], &mut on_packet);
        to.write_all(&buf[..n]).await?;
    }
}

/// Splits a byte stream into MySQL packets.
#[derive(Debug, Default)]
struct Framer {
    header: [u8; 4],
    header_len: usize,
    remaining: usize,
    payload: Vec<u8>,
}

impl Framer {
    /// Takes the next bytes of the stream; calls `on_packet(sequence, payload start)` for
    /// each packet they complete.
    fn feed(&mut self, mut data: &[u8], on_packet: &mut impl FnMut(u8, &[u8])) {
        while !data.is_empty() {
            if self.header_len < 4 {
                let n = (4 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len < 4 {
                    return;
                }
                self.remaining = usize::from(self.header[0])
                    | usize::from(self.header[1]) << 8
                    | usize::from(self.header[2]) << 16;
                self.payload.clear();
            }
            let n = self.remaining.min(data.len());
            let keep = n.min(CAPTURE.saturating_sub(self.payload.len()));
            self.payload.extend_from_slice(&data[..keep]);
            self.remaining -= n;
            data = &data[n..];
            if self.remaining == 0 {
                on_packet(self.header[3], &self.payload);
                self.header_len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn packets_are_framed_across_reads() {
        let mut stream = packet(0, b"\x03select 1");
        stream.extend(packet(1, b""));
        stream.extend(packet(0, b"\x17\x05\x00\x00\x00"));
        let mut seen = Vec::new();
        let mut framer = Framer::default();
        for chunk in stream.chunks(3) {
            framer.feed(chunk, &mut |seq, p| seen.push((seq, p.to_vec())));
        }
        assert_eq!(
            seen,
            vec![
                (0, b"\x03select 1".to_vec()),
                (1, Vec::new()),
                (0, b"\x17\x05\x00\x00\x00".to_vec())
            ]
        );
    }

    #[test]
    fn commands_are_classified() {
        let counters = Counters::default();
        let session = Mutex::new(Session::default());
        let mut probe = vec![COM_STMT_PREPARE];
        probe.extend_from_slice(zart_mysql::queries::CHANGE_PROBE.as_bytes());
        command(&counters, &session, &probe);
        answer(&session, b"\x00\x07\x00\x00\x00\x00\x00");
        command(&counters, &session, b"\x17\x07\x00\x00\x00\x00");
        command(&counters, &session, b"\x03start transaction");
        command(&counters, &session, b"\x03select 1 from zart_tasks");
        command(&counters, &session, b"\x17\x09\x00\x00\x00\x00");
        command(&counters, &session, b"\x0e");
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(
            (
                c(&counters.probes),
                c(&counters.zart),
                c(&counters.other),
                c(&counters.protocol)
            ),
            (1, 1, 2, 2)
        );
    }
}
