//! Invitations with consent (`InviteStore`): an invitation waits until its
//! invitee accepts (and joins) or declines, or it is withdrawn; every
//! outcome is an event in the room's log, and every refusal leaves the
//! room as it was.

use chat_shared::model::{EventBody, InviteId, Role, UserId};
use chat_shared::store::Error;
use chat_shared::testing::Backend;
use futures::future::join_all;

use crate::Fixture;

conformance!(
    an_invitation_waits_for_the_invitees_consent,
    declined_and_withdrawn_invitations_are_logged,
    invitations_are_refused_for_members_bans_repeats_and_outsiders,
    racing_accepts_join_once,
);

async fn an_invitation_waits_for_the_invitees_consent(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&owner).await;
    let (invite, event) = fx.create_invite(room.id, bob.id, owner.id).await.unwrap();
    assert_eq!(event.body, EventBody::MemberInvited { user: bob.id });
    assert_eq!(event.sender, Some(owner.id));
    assert_eq!(invite.user_id, bob.id);
    assert_eq!(invite.room.id, room.id);
    assert_eq!(invite.invited_by.as_ref().map(|u| u.id), Some(owner.id));
    // Not a member until they accept.
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), None);
    assert_eq!(fx.invites(bob.id).await.unwrap(), vec![invite.clone()]);
    assert_eq!(invite.invitee.id, bob.id);
    assert_eq!(
        fx.room_invites(room.id).await.unwrap(),
        vec![invite.clone()]
    );
    assert_eq!(fx.invite(invite.id).await.unwrap(), Some(invite.clone()));
    // Only the invitee accepts it.
    let refused = fx.accept_invite(invite.id, owner.id).await;
    assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");

    let joined = fx.accept_invite(invite.id, bob.id).await.unwrap();
    assert_eq!(joined.body, EventBody::MemberJoined { user: bob.id });
    assert_eq!(joined.sender, Some(bob.id));
    assert_eq!(joined.seq, event.seq + 1);
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), Some(Role::Member));
    assert!(fx.invites(bob.id).await.unwrap().is_empty());
    assert!(fx.room_invites(room.id).await.unwrap().is_empty());
    let again = fx.accept_invite(invite.id, bob.id).await;
    assert!(matches!(again, Err(Error::NotFound)), "{again:?}");
}

async fn declined_and_withdrawn_invitations_are_logged(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &carol).await;
    let (invite, _) = fx.create_invite(room, bob.id, owner.id).await.unwrap();
    let declined = fx.decline_invite(invite.id, bob.id).await.unwrap();
    assert_eq!(declined.body, EventBody::InviteDeclined { user: bob.id });
    assert_eq!(declined.sender, Some(bob.id));
    assert!(fx.invites(bob.id).await.unwrap().is_empty());
    assert_eq!(fx.role(room, bob.id).await.unwrap(), None);

    // Invited again; a member who did not invite cannot withdraw it.
    let (invite, _) = fx.create_invite(room, bob.id, owner.id).await.unwrap();
    let head = fx.reload(room).await.last_seq;
    let refused = fx.cancel_invite(room, bob.id, carol.id).await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    assert_eq!(fx.reload(room).await.last_seq, head);
    let (cancelled, event) = fx.cancel_invite(room, bob.id, owner.id).await.unwrap();
    assert_eq!(cancelled, invite.id);
    assert_eq!(event.body, EventBody::InviteCancelled { user: bob.id });
    let refused = fx.accept_invite(invite.id, bob.id).await;
    assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");
    let refused = fx.cancel_invite(room, bob.id, owner.id).await;
    assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");

    // The inviter withdraws their own.
    let (_, _) = fx.create_invite(room, bob.id, carol.id).await.unwrap();
    fx.cancel_invite(room, bob.id, carol.id).await.unwrap();
}

async fn invitations_are_refused_for_members_bans_repeats_and_outsiders(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let dave = fx.register("dave").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &carol).await;
    fx.ban(room, dave.id, owner.id, String::new())
        .await
        .unwrap();
    let head = fx.reload(room).await.last_seq;
    let cases = [
        (carol.id, owner.id, "member"),
        (dave.id, owner.id, "banned"),
        (carol.id, bob.id, "outsider"),
        (UserId::new(), owner.id, "nobody"),
    ];
    for (user, by, case) in cases {
        let refused = fx.create_invite(room, user, by).await;
        let expected = match case {
            "member" => matches!(refused, Err(Error::Conflict("member"))),
            "banned" => matches!(refused, Err(Error::Banned)),
            "outsider" => matches!(refused, Err(Error::NotMember)),
            _ => matches!(refused, Err(Error::NotFound)),
        };
        assert!(expected, "{case}: {refused:?}");
    }
    assert_eq!(fx.reload(room).await.last_seq, head, "nothing recorded");
    fx.create_invite(room, bob.id, owner.id).await.unwrap();
    let twice = fx.create_invite(room, bob.id, carol.id).await;
    assert!(
        matches!(twice, Err(Error::Conflict("invited"))),
        "{twice:?}"
    );
    // Banned after the invitation: the ban wins at the accept.
    let invite = fx.invites(bob.id).await.unwrap().remove(0);
    fx.ban(room, bob.id, owner.id, String::new()).await.unwrap();
    let refused = fx.accept_invite(invite.id, bob.id).await;
    assert!(matches!(refused, Err(Error::Banned)), "{refused:?}");
    assert_eq!(fx.role(room, bob.id).await.unwrap(), None);
    let unknown = fx.accept_invite(InviteId::new(), bob.id).await;
    assert!(matches!(unknown, Err(Error::NotFound)), "{unknown:?}");
}

async fn racing_accepts_join_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&owner).await.id;
    let (invite, _) = fx.create_invite(room, bob.id, owner.id).await.unwrap();
    let accepts = (0..8).map(|_| {
        let store = fx.store.clone();
        async move { store.accept_invite(invite.id, bob.id).await }
    });
    let answers = join_all(accepts).await;
    assert_eq!(
        answers.iter().filter(|a| a.is_ok()).count(),
        1,
        "{answers:?}"
    );
    let joins = fx
        .log(room)
        .await
        .into_iter()
        .filter(|e| e.body == EventBody::MemberJoined { user: bob.id })
        .count();
    assert_eq!(joins, 1);
}
