//! The sender's record step: what a round of sends learned, written in one transaction, and a
//! result the store refuses isolated so it never fails its batch-mates.
//!
//! As the processor does with events, a batch the store refuses (not an outage: a value it
//! will not take) is split in halves until the refused record stands alone; that one is
//! written again in a plain form (an accepted send without its id, which the echoed reference
//! attaches later; an error's words escaped to ASCII), and if the store refuses even that, it
//! is left `sending` for the webhook or the unknown timeout, and logged. Either way the rest of
//! the batch is recorded and the sender carries on.

use std::time::Duration;

use super::{Handled, STORE_RETRY, Sender, outcome_label};
use crate::domain::campaign::{RecipientId, SendRecord, SendResult};
use crate::domain::event::EventError;
use crate::domain::time::Timestamp;
use crate::ports::StoreError;

/// Writes of one batch tried again on an outage before the message is handed back.
const OUTAGE_TRIES: u32 = 5;

impl Sender {
    /// Records what these sends learned.
    pub(super) async fn record_all(
        &self,
        handled: &[(RecipientId, Handled)],
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let records: Vec<SendRecord> = handled
            .iter()
            .filter_map(|(id, h)| {
                let result = match h {
                    Handled::Recorded(result) => result.clone(),
                    Handled::Released => SendResult::Released {
                        at: now.plus(STORE_RETRY),
                    },
                    Handled::Uncertain => return None,
                };
                Some(SendRecord {
                    recipient: id.clone(),
                    result,
                    at: now,
                })
            })
            .collect();
        let mut pending: Vec<&[SendRecord]> = vec![&records];
        while let Some(slice) = pending.pop() {
            if slice.is_empty() {
                continue;
            }
            match self.record_through_outages(slice).await {
                Ok(()) => {}
                Err(StoreError::Rejected(_) | StoreError::Conflict(_)) if slice.len() > 1 => {
                    let (a, b) = slice.split_at(slice.len() / 2);
                    pending.push(a);
                    pending.push(b);
                }
                Err(e @ (StoreError::Rejected(_) | StoreError::Conflict(_))) => {
                    self.record_plain(&slice[0], &e).await?;
                }
                Err(e) => return Err(e),
            }
        }
        let m = &self.parts.metrics.send;
        for (_, h) in handled {
            m.count(outcome_label(h), 1);
        }
        Ok(())
    }

    /// One write, tried again a few times on an outage. A record that fails for good leaves
    /// its recipients `sending`: the message comes back, finds them not queued, and leaves
    /// them to the webhook or the unknown timeout; trying here first keeps that rare.
    async fn record_through_outages(&self, records: &[SendRecord]) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            match self.parts.campaigns.record(records).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.is_transient()
                        && tries < OUTAGE_TRIES
                        && !self.shutdown.is_cancelled() =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The record the store refused alone, written again in its plain form.
    async fn record_plain(&self, refused: &SendRecord, why: &StoreError) -> Result<(), StoreError> {
        let plain = SendRecord {
            recipient: refused.recipient.clone(),
            result: plain(&refused.result),
            at: refused.at,
        };
        tracing::warn!(recipient = %refused.recipient, error = %why, "the store refused a send's result; recording it plainly");
        match self
            .record_through_outages(std::slice::from_ref(&plain))
            .await
        {
            Err(e @ (StoreError::Rejected(_) | StoreError::Conflict(_))) => {
                tracing::error!(recipient = %refused.recipient, error = %e, "the store refused a send's result even plainly; leaving it to the webhook or the unknown timeout");
                Ok(())
            }
            other => other,
        }
    }
}

/// `result` with nothing a store could refuse: no BSP id (an accepted send stays accepted;
/// its echoed reference brings the id), every text escaped to printable ASCII.
fn plain(result: &SendResult) -> SendResult {
    let ascii = |s: &Option<String>| {
        s.as_deref()
            .map(|s| s.escape_default().to_string().chars().take(500).collect())
    };
    match result {
        SendResult::Sent { .. } => SendResult::Sent {
            provider_message_id: None,
        },
        SendResult::Failed { error } => SendResult::Failed {
            error: EventError {
                code: ascii(&error.code),
                message: ascii(&error.message),
            },
        },
        SendResult::Skipped { reason } => SendResult::Skipped {
            reason: reason.escape_default().to_string(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_results_drop_the_id_and_escape_texts() {
        let sent = SendResult::Sent {
            provider_message_id: Some("wamid.\0".into()),
        };
        assert_eq!(
            plain(&sent),
            SendResult::Sent {
                provider_message_id: None
            }
        );
        let failed = SendResult::Failed {
            error: EventError {
                code: Some("x\0".into()),
                message: Some("é\u{7}".into()),
            },
        };
        assert_eq!(
            plain(&failed),
            SendResult::Failed {
                error: EventError {
                    code: Some("x\\u{0}".into()),
                    message: Some("\\u{e9}\\u{7}".into()),
                },
            }
        );
    }
}
