//! Outgoing messages framed for the send queue: the header (masked with a fresh key in the
//! client role), compression where negotiated, and the choice between copying a payload
//! into the coalescing buffer and queueing its `Bytes` by reference. Also the close frame
//! (and its timer), and the check that a message may still be sent.

use bytes::{BufMut, Bytes};

use super::output::SHARE_THRESHOLD;
use super::Connection;
use crate::close::{CloseCode, MAX_REASON_LEN};
use crate::config::Role;
use crate::deflate::Compressor;
use crate::error::Error;
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use crate::mask::apply_mask;

impl Connection {
    /// Header of a final frame we send: masked with a fresh key in the client role.
    pub(super) fn header(&self, opcode: OpCode) -> FrameHeader {
        FrameHeader {
            mask: (self.role == Role::Client).then(rand::random::<[u8; 4]>),
            ..FrameHeader::new(opcode, 0)
        }
    }

    pub(super) fn check_can_send(&self) -> Result<(), Error> {
        if self.close_sent || self.close_received || self.failed || self.timed_out {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    pub(super) fn send_bytes(&mut self, opcode: OpCode, data: Bytes) -> Result<(), Error> {
        self.check_can_send()?;
        if self.role == Role::Server && !self.wants_compression(data.len()) {
            self.queue_data_bytes(FrameHeader::new(opcode, 0), data);
            Ok(())
        } else {
            self.send_message(opcode, &data)
        }
    }

    pub(super) fn wants_compression(&self, len: usize) -> bool {
        self.deflate
            .as_ref()
            .is_some_and(|d| d.params.compresses(self.role) && len >= d.compression_threshold)
    }

    pub(super) fn send_message(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        self.check_can_send()?;
        let mut header = self.header(opcode);
        let compress = self.wants_compression(payload.len());
        match self.deflate.as_deref_mut() {
            Some(deflate) if compress => {
                let (role, params) = (self.role, deflate.params);
                let c = deflate.compressor.get_or_insert_with(|| {
                    let (bits, nct) = params.outgoing(role);
                    Compressor::new(bits, nct)
                });
                let mut z = Vec::new();
                c.compress(payload, &mut z)?;
                header.rsv1 = true;
                if let Some(key) = header.mask {
                    apply_mask(&mut z, key, 0);
                }
                // The payload is already masked: encode the header with its key but do not
                // mask again.
                self.queue_premasked(header, z);
            }
            _ => self.out.queue().push_data_copied(header, payload),
        }
        Ok(())
    }

    /// Queue a data frame whose payload is final (already masked if `header.mask` is set).
    fn queue_premasked(&mut self, mut header: FrameHeader, payload: Vec<u8>) {
        header.payload_len = payload.len() as u64;
        if payload.len() < SHARE_THRESHOLD {
            let out = self.out.queue();
            header.encode_to(&mut out.tail);
            out.tail.put_slice(&payload);
            out.len += header.encoded_len() + payload.len();
        } else {
            self.out
                .queue()
                .push_data_shared(header, Bytes::from(payload));
        }
    }

    /// Queue an unmasked data frame (server role) with a payload already in `Bytes`.
    fn queue_data_bytes(&mut self, mut header: FrameHeader, payload: Bytes) {
        if payload.len() < SHARE_THRESHOLD {
            self.out.queue().push_data_copied(header, &payload);
        } else {
            header.payload_len = payload.len() as u64;
            self.out.queue().push_data_shared(header, payload);
        }
    }

    pub(super) fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::ControlPayloadTooLarge(payload.len()));
        }
        self.check_can_send()?;
        let header = self.header(opcode);
        self.out.queue().push_control(header, payload);
        Ok(())
    }

    /// Queue a close frame after all queued data; arms the close timeout.
    pub(super) fn queue_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let reason = &reason.as_bytes()[..reason.len().min(MAX_REASON_LEN)];
        payload[..2].copy_from_slice(&code.as_u16().to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason);
        let header = self.header(OpCode::Close);
        self.out
            .queue()
            .push_data_copied(header, &payload[..2 + reason.len()]);
        self.close_sent = true;
        self.clock.arm_close(self.config.close_timeout);
    }
}
