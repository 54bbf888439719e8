//! The Redis pub/sub adapter, for gateways in separate processes.
//!
//! Channels are `<prefix>:<topic>` (`chat:room:<uuid>`), so deployments and
//! tests can share one Redis. Publishing goes through a `ConnectionManager`
//! that reconnects by itself, under a short timeout: a send is never held
//! up by the bus. Each subscriber owns one pub/sub connection, driven by a
//! task that reconnects with backoff, subscribes again to everything it had,
//! and then reports [`Delivery::Resumed`]. A Redis that stops answering
//! (hung, or cut off without a reset) is treated as lost after
//! [`SUBSCRIBE_TIMEOUT`], so whoever waits for a subscribe (a connection
//! waiting for its `hello`) waits that long at most.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};

use super::{metrics, Bus, Delivery, Subscriber, Topic, DELIVERY_QUEUE};
use crate::error::{Error, Result};
use crate::metrics::names;

/// Longest a publish may take before it is abandoned.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest a subscription change, or connecting and subscribing again,
/// may take before the connection is given up and made anew.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// First and longest pause between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

/// A bus over Redis pub/sub.
#[derive(Clone)]
pub struct RedisBus {
    client: redis::Client,
    prefix: String,
    publisher: ConnectionManager,
}

impl RedisBus {
    /// Connects to `url`, namespacing every channel under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::Config(format!("REDIS_URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_connection_timeout(Some(PUBLISH_TIMEOUT));
        let publisher = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(bus_error)?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            publisher,
        })
    }

    fn channel(&self, topic: Topic) -> String {
        format!("{}:{topic}", self.prefix)
    }
}

fn bus_error(e: redis::RedisError) -> Error {
    Error::Bus(e.to_string())
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, topic: Topic, payload: Bytes) -> Result<()> {
        let mut publisher = self.publisher.clone();
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.channel(topic)).arg(payload.as_ref());
        let publish = command.query_async::<i64>(&mut publisher);
        let result = match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(result) => result.map(drop).map_err(bus_error),
            Err(_) => Err(Error::Bus("publish timed out".into())),
        };
        metrics::published(result.is_ok());
        result
    }

    async fn publish_many(&self, messages: Vec<(Topic, Bytes)>) -> Result<()> {
        let count = messages.len();
        let mut publisher = self.publisher.clone();
        let mut pipeline = redis::pipe();
        for (topic, payload) in &messages {
            pipeline
                .cmd("PUBLISH")
                .arg(self.channel(*topic))
                .arg(payload.as_ref())
                .ignore();
        }
        let publish = pipeline.query_async::<()>(&mut publisher);
        let result = match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(result) => result.map_err(bus_error),
            Err(_) => Err(Error::Bus("publish timed out".into())),
        };
        for _ in 0..count {
            metrics::published(result.is_ok());
        }
        result
    }

    async fn subscriber(&self) -> Result<(Box<dyn Subscriber>, mpsc::Receiver<Delivery>)> {
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (deliveries_tx, deliveries_rx) = mpsc::channel(DELIVERY_QUEUE);
        let task = SubscriptionTask {
            client: self.client.clone(),
            prefix: format!("{}:", self.prefix),
            wanted: HashSet::new(),
            commands: commands_rx,
            deliveries: deliveries_tx,
        };
        tokio::spawn(task.run());
        let subscriber = RedisSubscriber {
            prefix: self.prefix.clone(),
            commands: commands_tx,
        };
        Ok((Box::new(subscriber), deliveries_rx))
    }
}

/// A request to the subscription task.
struct Command {
    subscribe: bool,
    channels: Vec<String>,
    done: oneshot::Sender<Result<()>>,
}

/// The handle of one subscription; dropping it ends its connection.
struct RedisSubscriber {
    prefix: String,
    commands: mpsc::Sender<Command>,
}

impl RedisSubscriber {
    async fn send(&self, subscribe: bool, topics: &[Topic]) -> Result<()> {
        let channels = topics
            .iter()
            .map(|t| format!("{}:{t}", self.prefix))
            .collect();
        let (done, answer) = oneshot::channel();
        let command = Command {
            subscribe,
            channels,
            done,
        };
        let gone = || Error::Bus("the subscription task has stopped".into());
        self.commands.send(command).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

#[async_trait]
impl Subscriber for RedisSubscriber {
    async fn subscribe(&self, topics: &[Topic]) -> Result<()> {
        self.send(true, topics).await
    }

    async fn unsubscribe(&self, topics: &[Topic]) -> Result<()> {
        self.send(false, topics).await
    }
}

/// Owns one pub/sub connection and keeps it subscribed to `wanted`.
struct SubscriptionTask {
    client: redis::Client,
    /// `<prefix>:`, stripped from incoming channel names.
    prefix: String,
    /// Every channel the subscriber asked for, re-subscribed on reconnect.
    wanted: HashSet<String>,
    commands: mpsc::Receiver<Command>,
    /// Bounded: when the consumer falls this far behind, messages are
    /// dropped (and repaired from the store), as Redis itself would.
    deliveries: mpsc::Sender<Delivery>,
}

/// Why a connected phase ended.
enum Ended {
    /// The handle was dropped: stop.
    Dropped,
    /// The connection failed: reconnect.
    Lost,
}

impl SubscriptionTask {
    async fn run(mut self) {
        let mut backoff = BACKOFF.0;
        let mut resumed = false;
        loop {
            match tokio::time::timeout(SUBSCRIBE_TIMEOUT, self.connect()).await {
                Ok(Ok((sink, stream))) => {
                    backoff = BACKOFF.0;
                    if resumed {
                        tracing::info!("redis subscription restored");
                        ::metrics::counter!(names::BUS_RECONNECTS).increment(1);
                        let _ = self.deliveries.send(Delivery::Resumed).await;
                    }
                    resumed = true;
                    match self.serve(sink, stream).await {
                        Ended::Dropped => return,
                        Ended::Lost => tracing::warn!("redis subscription lost; reconnecting"),
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, ?backoff, "cannot subscribe to redis; retrying")
                }
                Err(_) => tracing::warn!(?backoff, "redis did not answer a subscribe; retrying"),
            }
            // While disconnected, requests only change what will be
            // subscribed on reconnect; the `Resumed` that follows tells the
            // consumer to catch up on what it missed meanwhile.
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    command = self.commands.recv() => match command {
                        Some(command) => {
                            self.remember(&command);
                            let _ = command.done.send(Ok(()));
                        }
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    async fn connect(&self) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
        let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
        if !self.wanted.is_empty() {
            sink.subscribe(self.wanted.iter().collect::<Vec<_>>())
                .await?;
        }
        Ok((sink, stream))
    }

    async fn serve(&mut self, mut sink: PubSubSink, mut stream: PubSubStream) -> Ended {
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else { return Ended::Dropped };
                    self.remember(&command);
                    let change = async {
                        if command.subscribe {
                            sink.subscribe(&command.channels).await
                        } else {
                            sink.unsubscribe(&command.channels).await
                        }
                    };
                    // Given up, the connection is made anew, and what this
                    // change asked for is subscribed on the new one.
                    let result = match tokio::time::timeout(SUBSCRIBE_TIMEOUT, change).await {
                        Ok(result) => result.map_err(bus_error),
                        Err(_) => Err(Error::Bus("redis did not answer a subscribe".into())),
                    };
                    let failed = result.is_err();
                    let _ = command.done.send(result);
                    if failed {
                        return Ended::Lost;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else { return Ended::Lost };
                    let topic = message
                        .get_channel_name()
                        .strip_prefix(&self.prefix)
                        .and_then(Topic::parse);
                    let Some(topic) = topic else { continue };
                    let payload = Bytes::copy_from_slice(message.get_payload_bytes());
                    // Full: the consumer is behind; drop as Redis would.
                    let queued = self.deliveries.try_send(Delivery::Message { topic, payload });
                    metrics::received(queued.is_ok());
                }
            }
        }
    }

    fn remember(&mut self, command: &Command) {
        for channel in &command.channels {
            if command.subscribe {
                self.wanted.insert(channel.clone());
            } else {
                self.wanted.remove(channel);
            }
        }
    }
}
