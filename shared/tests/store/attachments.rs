//! Attachments: an upload is a member's, a message carries only its
//! sender's finished uploads of its room (each once, decided at the
//! commit), and whatever ends an attachment — its message or room deleted,
//! or no message sent in time — leaves it for the sweeper, who forgets it
//! once its bytes are gone.

use chat_shared::model::{Attachment, AttachmentId, EventBody, RoomEvent, RoomId, User};
use chat_shared::store::{
    Error, MessageChange, NewAttachment, NewMessage, Page, StoredAttachment, Uploaded,
};
use chat_shared::testing::Backend;

use crate::Fixture;

conformance!(
    an_upload_is_a_members_and_finishes_once,
    a_message_carries_its_senders_finished_uploads_of_its_room,
    an_attachment_is_carried_by_one_message_even_in_one_batch,
    a_retried_send_carries_its_attachments_once,
    deleting_the_message_or_the_room_deletes_the_attachments,
    unsent_uploads_expire_and_are_forgotten_once_deleted,
);

impl Fixture {
    /// Begins an upload of `name` by `user` into `room`.
    async fn begin(&self, room: RoomId, user: &User, name: &str) -> AttachmentId {
        self.begin_upload(NewAttachment {
            room,
            uploader: user.id,
            name: name.to_owned(),
            content_type: "image/png".into(),
        })
        .await
        .expect("beginning an upload")
    }

    /// Uploads a 640×480 PNG with a thumbnail, finished.
    async fn upload(&self, room: RoomId, user: &User, name: &str) -> AttachmentId {
        let id = self.begin(room, user, name).await;
        self.finish_upload(id, png()).await.expect("finishing");
        id
    }

    /// Sends `body` carrying `attachments`.
    async fn send_with(
        &self,
        room: RoomId,
        sender: &User,
        client_id: &str,
        attachments: Vec<AttachmentId>,
    ) -> chat_shared::store::Result<RoomEvent> {
        let message = NewMessage {
            attachments,
            ..NewMessage::text(client_id, "see attached")
        };
        self.append_message(room, sender.id, message)
            .await
            .map(|a| a.event)
    }

    /// The attachment as stored now.
    async fn stored(&self, id: AttachmentId) -> StoredAttachment {
        self.attachment(id)
            .await
            .expect("reading an attachment")
            .expect("the attachment exists")
    }
}

/// What storing a 640×480 PNG found.
fn png() -> Uploaded {
    Uploaded {
        content_type: "image/png".into(),
        size: 12_345,
        width: Some(640),
        height: Some(480),
        thumbnail_type: Some("image/jpeg".into()),
    }
}

/// The attachments an event carries.
fn carried(event: &RoomEvent) -> &[Attachment] {
    match &event.body {
        EventBody::Message { attachments, .. } => attachments,
        other => panic!("not a message: {other:?}"),
    }
}

async fn an_upload_is_a_members_and_finishes_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, mallory) = (fx.register("alice").await, fx.register("mallory").await);
    let room = fx.private_room(&alice).await.id;
    let outsider = fx
        .begin_upload(NewAttachment {
            room,
            uploader: mallory.id,
            name: "x.png".into(),
            content_type: "image/png".into(),
        })
        .await;
    assert!(matches!(outsider, Err(Error::NotMember)), "{outsider:?}");
    let nowhere = fx
        .begin_upload(NewAttachment {
            room: RoomId::new(),
            uploader: alice.id,
            name: "x.png".into(),
            content_type: "image/png".into(),
        })
        .await;
    assert!(matches!(nowhere, Err(Error::NotFound)), "{nowhere:?}");

    let id = fx.begin(room, &alice, "cat.png").await;
    let begun = fx.stored(id).await;
    assert!(!begun.ready);
    assert_eq!((begun.room_id, begun.uploader), (room, alice.id));
    assert_eq!(begun.attachment.name, "cat.png");

    fx.finish_upload(id, png()).await.expect("finishing");
    let finished = fx.stored(id).await;
    assert!(finished.ready);
    assert_eq!(finished.seq, None);
    assert_eq!(finished.thumbnail_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        finished.attachment,
        Attachment {
            id,
            name: "cat.png".into(),
            content_type: "image/png".into(),
            size: 12_345,
            width: Some(640),
            height: Some(480),
            thumbnail: true,
        }
    );
    // Finished once; an abandoned upload cannot be finished later.
    assert!(matches!(
        fx.finish_upload(id, png()).await,
        Err(Error::NotFound)
    ));
    let dropped = fx.begin(room, &alice, "half.png").await;
    fx.abandon_upload(dropped).await.expect("abandoning");
    assert!(matches!(
        fx.finish_upload(dropped, png()).await,
        Err(Error::NotFound)
    ));
    assert!(!fx.stored(dropped).await.ready);
    assert_eq!(fx.deleted_attachments(10).await.unwrap(), vec![dropped]);
}

async fn a_message_carries_its_senders_finished_uploads_of_its_room(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob) = (fx.register("alice").await, fx.register("bob").await);
    let room = fx.room_with(&alice, &[&bob]).await;
    let elsewhere = fx.private_room(&alice).await.id;
    let (cat, dog) = (
        fx.upload(room, &alice, "cat.png").await,
        fx.upload(room, &alice, "dog.png").await,
    );
    let other_room = fx.upload(elsewhere, &alice, "other.png").await;
    let unfinished = fx.begin(room, &alice, "slow.png").await;
    let before = fx.reload(room).await.last_seq;

    for (who, ids, why) in [
        (&bob, vec![cat], "another member's upload"),
        (&alice, vec![other_room], "an upload of another room"),
        (&alice, vec![unfinished], "an unfinished upload"),
        (&alice, vec![AttachmentId::new()], "no such upload"),
        (&alice, vec![cat, cat], "the same upload twice"),
        (&alice, vec![cat, other_room], "one bad of two"),
    ] {
        let refused = fx.send_with(room, who, &format!("bad-{why}"), ids).await;
        assert!(
            matches!(refused, Err(Error::Invalid(_))),
            "{why}: {refused:?}"
        );
    }
    assert_eq!(fx.reload(room).await.last_seq, before, "nothing stored");

    let sent = fx
        .send_with(room, &alice, "pets", vec![dog, cat])
        .await
        .expect("sending");
    let names: Vec<&str> = carried(&sent).iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["dog.png", "cat.png"], "in the sender's order");
    assert_eq!(carried(&sent)[1], fx.stored(cat).await.attachment);
    assert_eq!(fx.stored(cat).await.seq, Some(sent.seq));
    // Readers of the log and of the timeline see what the send returned.
    let page = Page {
        after: Some(sent.seq - 1),
        before: None,
        limit: 1,
    };
    assert_eq!(fx.events(room, page).await.unwrap()[0], sent);
    let timeline = fx.timeline(room, bob.id, page).await.unwrap();
    assert_eq!(carried(&timeline.items[0].event), carried(&sent));

    // Carried once: a second message cannot take it.
    let again = fx.send_with(room, &alice, "again", vec![cat]).await;
    assert!(matches!(again, Err(Error::Invalid(_))), "{again:?}");

    // A member who left hears that, not that the upload is bad.
    let kept = fx.upload(room, &bob, "kept.png").await;
    fx.remove_member(
        room,
        bob.id,
        alice.id,
        chat_shared::model::LeaveReason::Kicked,
    )
    .await
    .unwrap();
    let gone = fx.send_with(room, &bob, "after-kick", vec![kept]).await;
    assert!(matches!(gone, Err(Error::NotMember)), "{gone:?}");
}

async fn an_attachment_is_carried_by_one_message_even_in_one_batch(backend: Backend) {
    let fx = std::sync::Arc::new(Fixture::new(backend).await);
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await.id;
    let cat = fx.upload(room, &alice, "cat.png").await;
    // Submitted together, so they can share a batch: one carries it.
    let mut submitted = Vec::new();
    for i in 0..8 {
        let message = NewMessage {
            attachments: vec![cat],
            ..NewMessage::text(format!("race-{i}"), "mine")
        };
        submitted.push(fx.submit_message(room, alice.id, message).await.unwrap());
    }
    let mut carried_by = Vec::new();
    for (i, s) in submitted.into_iter().enumerate() {
        match s.answer().await {
            Ok(appended) => carried_by.push((i, appended.event.seq)),
            Err(Error::Invalid(_)) => {}
            Err(e) => panic!("send {i}: {e:?}"),
        }
    }
    assert_eq!(carried_by.len(), 1, "{carried_by:?}");
    assert_eq!(carried_by[0].0, 0, "the first submitted wins");
    assert_eq!(fx.stored(cat).await.seq, Some(carried_by[0].1));
    assert_eq!(
        fx.reload(room).await.last_seq,
        carried_by[0].1,
        "no seq taken by a refused send"
    );
}

async fn a_retried_send_carries_its_attachments_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await.id;
    let cat = fx.upload(room, &alice, "cat.png").await;
    let first = fx.send_with(room, &alice, "once", vec![cat]).await.unwrap();
    let message = NewMessage {
        attachments: vec![cat],
        ..NewMessage::text("once", "see attached")
    };
    let retry = fx.append_message(room, alice.id, message).await.unwrap();
    assert!(!retry.created);
    assert_eq!(retry.event, first);
    assert_eq!(carried(&retry.event).len(), 1);
}

async fn deleting_the_message_or_the_room_deletes_the_attachments(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await.id;
    let (cat, dog) = (
        fx.upload(room, &alice, "cat.png").await,
        fx.upload(room, &alice, "dog.png").await,
    );
    let sent = fx.send_with(room, &alice, "cat", vec![cat]).await.unwrap();
    fx.send_with(room, &alice, "dog", vec![dog]).await.unwrap();
    assert_eq!(fx.deleted_attachments(10).await.unwrap(), vec![]);

    fx.change_message(room, alice.id, sent.id, None, MessageChange::Delete)
        .await
        .expect("deleting");
    assert!(!fx.stored(cat).await.ready);
    assert!(fx.stored(dog).await.ready);
    assert_eq!(fx.deleted_attachments(10).await.unwrap(), vec![cat]);
    // The tombstone keeps no trace of the file.
    let log = fx.log(room).await;
    let tombstone = log.iter().find(|e| e.id == sent.id).unwrap();
    assert!(carried(tombstone).is_empty());

    // The sweeper forgets it once its bytes are gone.
    fx.forget_attachment(cat).await.unwrap();
    assert!(fx.attachment(cat).await.unwrap().is_none());

    // A deleted room leaves its attachments for the sweeper.
    let unsent = fx.upload(room, &alice, "unsent.png").await;
    assert!(fx.delete_room(room).await.unwrap());
    let mut left = fx.deleted_attachments(10).await.unwrap();
    left.sort();
    let mut expected = vec![dog, unsent];
    expected.sort();
    assert_eq!(left, expected);
}

async fn unsent_uploads_expire_and_are_forgotten_once_deleted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await.id;
    let sent = fx.upload(room, &alice, "sent.png").await;
    fx.send_with(room, &alice, "s", vec![sent]).await.unwrap();
    let (ready, unfinished) = (
        fx.upload(room, &alice, "ready.png").await,
        fx.begin(room, &alice, "unfinished.png").await,
    );
    // Nothing begun before an hour ago: nothing expires.
    let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    assert_eq!(fx.expire_attachments(hour_ago).await.unwrap(), 0);
    assert!(fx.stored(ready).await.ready);

    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(fx.expire_attachments(later).await.unwrap(), 2);
    assert!(fx.stored(sent).await.ready, "a sent one stays");
    let mut deleted = fx.deleted_attachments(10).await.unwrap();
    deleted.sort();
    let mut expected = vec![ready, unfinished];
    expected.sort();
    assert_eq!(deleted, expected);
    // An expired upload cannot be finished or sent.
    assert!(matches!(
        fx.finish_upload(unfinished, png()).await,
        Err(Error::NotFound)
    ));
    let late = fx.send_with(room, &alice, "late", vec![ready]).await;
    assert!(matches!(late, Err(Error::Invalid(_))), "{late:?}");

    // Forgetting touches only deleted rows.
    fx.forget_attachment(sent).await.unwrap();
    assert!(fx.attachment(sent).await.unwrap().is_some());
    for id in deleted {
        fx.forget_attachment(id).await.unwrap();
    }
    assert_eq!(fx.deleted_attachments(10).await.unwrap(), vec![]);
}
