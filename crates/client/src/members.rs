//! The members API (`/v2/members`) and `/health`, as etcdctl's `member` and
//! `cluster-health` use them.

use crate::client::{Client, Reply};
use crate::error::Error;
use crate::request::KeysRequest;
use hyper::Method;
use serde::{Deserialize, Serialize};

/// One member as `/v2/members` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Hex, as on the wire.
    pub id: String,
    /// Empty until the member has started and published itself.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    /// A non-voting member (musubi's; etcd's v2 API has no learners).
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

#[derive(Deserialize)]
struct MemberList {
    members: Vec<Member>,
}

#[derive(Serialize)]
struct MemberBody<'a> {
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner", skip_serializing_if = "std::ops::Not::not")]
    is_learner: bool,
}

impl Client {
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        let list: MemberList = json(self.member_request(Method::GET, "", None).await?)?;
        Ok(list.members)
    }

    /// The leader, or an error during an election.
    pub async fn leader(&self) -> Result<Member, Error> {
        json(self.member_request(Method::GET, "/leader", None).await?)
    }

    /// Adds a member by its peer URLs; it starts with `--initial-cluster-state existing`.
    pub async fn add_member(
        &self,
        peer_urls: &[String],
        is_learner: bool,
    ) -> Result<Member, Error> {
        let body = MemberBody {
            peer_urls,
            is_learner,
        };
        json(self.member_request(Method::POST, "", Some(&body)).await?)
    }

    pub async fn remove_member(&self, id: &str) -> Result<(), Error> {
        self.member_request(Method::DELETE, &format!("/{id}"), None)
            .await
            .map(drop)
    }

    pub async fn update_member(&self, id: &str, peer_urls: &[String]) -> Result<(), Error> {
        let body = MemberBody {
            peer_urls,
            is_learner: false,
        };
        self.member_request(Method::PUT, &format!("/{id}"), Some(&body))
            .await
            .map(drop)
    }

    /// Makes a caught-up learner a voter.
    pub async fn promote_member(&self, id: &str) -> Result<Member, Error> {
        json(
            self.member_request(Method::POST, &format!("/{id}/promote"), None)
                .await?,
        )
    }

    /// Whether the first endpoint that answers reports itself healthy (`/health`).
    pub async fn health(&self) -> Result<bool, Error> {
        let reply = self.send_answered(&KeysRequest::health()).await?;
        #[derive(Deserialize)]
        struct Health {
            health: String,
        }
        let health: Option<Health> = serde_json::from_slice(&reply.body).ok();
        Ok(reply.status.is_success() && health.is_some_and(|h| h.health == "true"))
    }

    async fn member_request(
        &self,
        method: Method,
        rest: &str,
        body: Option<&MemberBody<'_>>,
    ) -> Result<Reply, Error> {
        let body = body.map(|b| serde_json::to_string(b).expect("a member body serializes"));
        let reply = self.send(&KeysRequest::members(method, rest, body)).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(refusal(&reply))
        }
    }
}

/// A members API refusal carries `{"message": …}`.
fn refusal(reply: &Reply) -> Error {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let message = serde_json::from_slice::<Message>(&reply.body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&reply.body).trim_end().to_string());
    Error::Refused {
        status: reply.status.as_u16(),
        message,
    }
}

fn json<T: for<'de> Deserialize<'de>>(reply: Reply) -> Result<T, Error> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        Error::Decode(format!(
            "{e}: {}",
            String::from_utf8_lossy(&reply.body).trim_end()
        ))
    })
}
