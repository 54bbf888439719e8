//! Invite links (`InviteLinkStore`): made by owners and admins, joined by
//! whoever has the code until expired, used up or revoked, each join
//! counted in its own transaction so the last use goes to one of two
//! racing joins, and no use counted on a refusal.

use chat_shared::model::{EventBody, Role, RoomId};
use chat_shared::store::{Error, NewInviteLink};
use chat_shared::testing::Backend;
use futures::future::join_all;
use time::{Duration, OffsetDateTime};

use crate::Fixture;

conformance!(
    owners_and_admins_make_links_that_let_people_join,
    expired_revoked_and_used_up_links_let_nobody_in,
    two_joins_on_the_last_use_admit_one,
);

fn link(code: &str, expires_at: Option<OffsetDateTime>, max_uses: Option<u32>) -> NewInviteLink {
    NewInviteLink {
        code: code.into(),
        expires_at,
        max_uses,
    }
}

async fn owners_and_admins_make_links_that_let_people_join(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &bob).await;
    let refused = fx
        .create_invite_link(room, bob.id, link("a", None, None))
        .await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    let refused = fx
        .create_invite_link(room, carol.id, link("a", None, None))
        .await;
    assert!(matches!(refused, Err(Error::NotMember)), "{refused:?}");
    let refused = fx
        .create_invite_link(RoomId::new(), owner.id, link("a", None, None))
        .await;
    assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");
    assert!(fx.invite_links(room).await.unwrap().is_empty());

    let expires =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp() + 3600)
            .unwrap();
    let made = fx
        .create_invite_link(room, owner.id, link("code-1", Some(expires), Some(5)))
        .await
        .unwrap();
    assert_eq!((made.room_id, made.created_by), (room, Some(owner.id)));
    assert_eq!(
        (made.expires_at, made.max_uses, made.uses),
        (Some(expires), Some(5), 0)
    );
    fx.set_role(room, bob.id, owner.id, Role::Admin)
        .await
        .unwrap();
    fx.create_invite_link(room, bob.id, link("code-2", None, None))
        .await
        .unwrap();
    assert_eq!(fx.invite_links(room).await.unwrap().len(), 2);

    // Carol had a pending invitation: joining by link spends it.
    fx.create_invite(room, carol.id, owner.id).await.unwrap();
    let joined = fx.join_by_link("code-1", carol.id).await.unwrap();
    assert_eq!(joined.body, EventBody::MemberJoined { user: carol.id });
    assert_eq!(joined.sender, Some(carol.id));
    assert_eq!(fx.role(room, carol.id).await.unwrap(), Some(Role::Member));
    assert!(fx.invites(carol.id).await.unwrap().is_empty());
    let again = fx.join_by_link("code-1", carol.id).await;
    assert!(matches!(again, Err(Error::Conflict("member"))), "{again:?}");
    let listed = fx.invite_links(room).await.unwrap();
    let one = listed.iter().find(|l| l.code == "code-1").unwrap();
    assert_eq!(one.uses, 1, "a refused join counts no use");
    let unknown = fx.join_by_link("nope", carol.id).await;
    assert!(matches!(unknown, Err(Error::NotFound)), "{unknown:?}");
}

async fn expired_revoked_and_used_up_links_let_nobody_in(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let dave = fx.register("dave").await;
    let room = fx.private_room(&owner).await.id;
    let past = OffsetDateTime::now_utc() - Duration::seconds(1);
    fx.create_invite_link(room, owner.id, link("old", Some(past), None))
        .await
        .unwrap();
    fx.create_invite_link(room, owner.id, link("once", None, Some(1)))
        .await
        .unwrap();
    fx.create_invite_link(room, owner.id, link("gone", None, None))
        .await
        .unwrap();
    assert!(fx.revoke_invite_link(room, "gone").await.unwrap());
    assert!(!fx.revoke_invite_link(room, "gone").await.unwrap());
    assert!(!fx.revoke_invite_link(RoomId::new(), "once").await.unwrap());
    fx.ban(room, dave.id, owner.id, String::new())
        .await
        .unwrap();

    let head = fx.reload(room).await.last_seq;
    for (code, expected) in [("old", "link_expired"), ("gone", "link_revoked")] {
        let refused = fx.join_by_link(code, bob.id).await;
        assert!(
            matches!(refused, Err(Error::Conflict(c)) if c == expected),
            "{code}: {refused:?}"
        );
    }
    let refused = fx.join_by_link("once", dave.id).await;
    assert!(matches!(refused, Err(Error::Banned)), "{refused:?}");
    assert_eq!(fx.reload(room).await.last_seq, head, "nothing recorded");
    fx.join_by_link("once", bob.id).await.unwrap();
    let refused = fx.join_by_link("once", carol.id).await;
    assert!(
        matches!(refused, Err(Error::Conflict("link_used_up"))),
        "{refused:?}"
    );
    let links = fx.invite_links(room).await.unwrap();
    assert_eq!(links.iter().find(|l| l.code == "once").unwrap().uses, 1);
    assert!(links
        .iter()
        .find(|l| l.code == "gone")
        .unwrap()
        .revoked_at
        .is_some());
}

async fn two_joins_on_the_last_use_admit_one(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let room = fx.private_room(&owner).await.id;
    let mut people = Vec::new();
    for i in 0..6 {
        people.push(fx.register(&format!("user{i}")).await);
    }
    fx.create_invite_link(room, owner.id, link("two", None, Some(2)))
        .await
        .unwrap();
    let joins = people.iter().map(|p| {
        let store = fx.store.clone();
        let id = p.id;
        async move { store.join_by_link("two", id).await }
    });
    let answers = join_all(joins).await;
    assert_eq!(
        answers.iter().filter(|a| a.is_ok()).count(),
        2,
        "{answers:?}"
    );
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(_) | Err(Error::Conflict("link_used_up")))));
    assert_eq!(fx.members(room).await.unwrap().len(), 3);
    assert_eq!(fx.invite_links(room).await.unwrap()[0].uses, 2);
}
