//! A simulated device's own MQTT connection to a broker (its id as client id and user
//! name, its enrolment password, a fresh session), for tests that publish its signed
//! messages themselves.
#![allow(dead_code)]

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use threshold_proto::SignedMessage;

pub struct Wire {
    client: AsyncClient,
    topic: String,
}

impl Wire {
    /// Connect as `dev` and wait for the broker's CONNACK.
    pub async fn connect(dev: &super::sim::SimDevice, port: u16) -> Wire {
        Wire::connect_as(&dev.hex(), &dev.enrolment, port).await
    }

    /// Connect as the device `id` enrolled with `enrolment` (the hub's answer).
    pub async fn connect_as(id: &str, enrolment: &Value, port: u16) -> Wire {
        let mqtt = &enrolment["mqtt"];
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_credentials(id, mqtt["password"].as_str().unwrap_or_default());
        o.set_clean_start(true);
        let (client, mut el) = AsyncClient::new(o, 256);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => panic!("device {id} cannot connect: {e}"),
            }
        }
        tokio::spawn(async move { while el.poll().await.is_ok() {} });
        let prefix = mqtt["topic_prefix"].as_str().unwrap_or_default();
        Wire {
            client,
            topic: format!("{prefix}/v1/dev/{id}/up"),
        }
    }

    /// Publish `m` on the device's uplink (QoS 1).
    pub async fn send(&self, m: &SignedMessage) {
        self.client
            .publish(
                self.topic.clone(),
                QoS::AtLeastOnce,
                false,
                m.as_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
}
