//! Server administration (`AdminStore`): server roles acting in every room
//! through the store's own checks at commit, who may grant them, the last
//! admin kept, deactivation by rank, reports and their queue, and the
//! audit log written with each action and paged newest first.

use chat_shared::admin::{AuditAction, NewAudit, NewReport, ReportTarget, ServerRole};
use chat_shared::model::{Role, User};
use chat_shared::store::MessageChange;
use chat_shared::testing::Backend;
use chat_shared::Error;

use crate::Fixture;

conformance!(
    server_roles_act_as_room_roles_in_every_room,
    only_active_admins_grant_server_roles_and_one_admin_remains,
    deactivation_goes_by_rank_and_shows_in_the_account,
    reports_queue_once_per_reporter_and_resolve_once,
    the_audit_log_pages_newest_first,
);

/// Makes `user` a server admin from the command line (no actor).
async fn grant(fx: &Fixture, user: &User, role: ServerRole) {
    fx.set_server_role(user.id, Some(role), None)
        .await
        .expect("granting a server role");
}

async fn server_roles_act_as_room_roles_in_every_room(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob, root, modo) = (
        fx.register("alice").await,
        fx.register("bob").await,
        fx.register("root").await,
        fx.register("modo").await,
    );
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    let message = fx.send(room.id, bob.id, "m1").await.event;
    let second = fx.send(room.id, bob.id, "m2").await.event;

    // Before any grant, neither may act in a room they are not in.
    assert_eq!(fx.effective_role(room.id, root.id).await.unwrap(), None);
    let refused = fx
        .change_message(room.id, modo.id, message.id, None, MessageChange::Delete)
        .await;
    assert!(matches!(refused, Err(Error::NotMember)), "{refused:?}");

    grant(&fx, &root, ServerRole::Admin).await;
    grant(&fx, &modo, ServerRole::Moderator).await;
    assert_eq!(
        fx.effective_role(room.id, root.id).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(
        fx.effective_role(room.id, modo.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert_eq!(
        fx.effective_role(room.id, alice.id).await.unwrap(),
        Some(Role::Owner)
    );
    // A membership is not what a server role gives: `role` stays the room's.
    assert_eq!(fx.role(room.id, root.id).await.unwrap(), None);

    // A moderator deletes anyone's message and pins, as a room admin would…
    let deleted = fx
        .change_message(room.id, modo.id, message.id, None, MessageChange::Delete)
        .await
        .expect("a moderator deletes a message");
    assert!(deleted.created);
    fx.change_message(room.id, modo.id, second.id, None, MessageChange::Pin)
        .await
        .expect("a moderator pins");
    // …but hands no room over: only an owner changes roles.
    let handover = fx.set_role(room.id, bob.id, modo.id, Role::Owner).await;
    assert!(matches!(handover, Err(Error::NotAllowed)), "{handover:?}");
    // A server admin does, as owner; the owner becomes admin.
    let events = fx
        .set_role(room.id, bob.id, root.id, Role::Owner)
        .await
        .expect("a server admin hands the room over");
    assert_eq!(events.len(), 2);
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(fx.role(room.id, alice.id).await.unwrap(), Some(Role::Admin));

    // The moderator's deletion is audited (in its transaction); the
    // sender deleting their own message is not.
    fx.change_message(room.id, bob.id, second.id, None, MessageChange::Delete)
        .await
        .unwrap();
    let audit = fx.audit_log(None, 50).await.unwrap();
    let deletions: Vec<_> = audit
        .iter()
        .filter(|e| e.action == AuditAction::DeleteMessage)
        .collect();
    assert_eq!(deletions.len(), 1, "{audit:?}");
    assert_eq!(deletions[0].actor, Some(modo.id));
    assert_eq!(deletions[0].target_user, Some(bob.id));
    assert_eq!(deletions[0].room_id, Some(room.id));
    assert_eq!(deletions[0].target_id, Some(message.id.0));

    // A deactivated admin's server role counts for nothing.
    fx.set_deactivated(modo.id, true, root.id).await.unwrap();
    assert_eq!(fx.effective_role(room.id, modo.id).await.unwrap(), None);
}

async fn only_active_admins_grant_server_roles_and_one_admin_remains(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (root, modo, carol) = (
        fx.register("root").await,
        fx.register("modo").await,
        fx.register("carol").await,
    );
    // Nobody but the command line grants the first admin.
    let early = fx
        .set_server_role(carol.id, Some(ServerRole::Admin), Some(carol.id))
        .await;
    assert!(matches!(early, Err(Error::NotAllowed)), "{early:?}");
    grant(&fx, &root, ServerRole::Admin).await;
    let account = fx
        .set_server_role(modo.id, Some(ServerRole::Moderator), Some(root.id))
        .await
        .unwrap();
    assert_eq!(account.server_role, Some(ServerRole::Moderator));

    // A moderator grants nothing, not even to themselves.
    for (target, role) in [
        (carol.id, Some(ServerRole::Moderator)),
        (modo.id, Some(ServerRole::Admin)),
        (root.id, None),
    ] {
        let refused = fx.set_server_role(target, role, Some(modo.id)).await;
        assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    }
    let again = fx
        .set_server_role(modo.id, Some(ServerRole::Moderator), Some(root.id))
        .await;
    assert!(
        matches!(again, Err(Error::Conflict("unchanged"))),
        "{again:?}"
    );
    let nobody = fx
        .set_server_role(chat_shared::model::UserId::new(), None, Some(root.id))
        .await;
    assert!(matches!(nobody, Err(Error::NotFound)), "{nobody:?}");

    // The last active admin cannot be demoted, by themselves or the shell.
    for by in [Some(root.id), None] {
        let last = fx.set_server_role(root.id, None, by).await;
        assert!(
            matches!(last, Err(Error::Conflict("last_admin"))),
            "{last:?}"
        );
    }
    assert_eq!(
        fx.account(root.id).await.unwrap().unwrap().server_role,
        Some(ServerRole::Admin)
    );
    // With a second admin, one may step down.
    fx.set_server_role(carol.id, Some(ServerRole::Admin), Some(root.id))
        .await
        .unwrap();
    fx.set_server_role(root.id, None, Some(root.id))
        .await
        .unwrap();
    assert_eq!(
        fx.account(root.id).await.unwrap().unwrap().server_role,
        None
    );

    let audit = fx.audit_log(None, 50).await.unwrap();
    let actions: Vec<_> = audit.iter().map(|e| (e.action, e.actor)).collect();
    assert_eq!(
        actions,
        vec![
            (AuditAction::RevokeRole, Some(root.id)),
            (AuditAction::GrantRole, Some(root.id)),
            (AuditAction::GrantRole, Some(root.id)),
            (AuditAction::GrantRole, None),
        ]
    );
    assert_eq!(audit[0].detail, "admin");
    assert_eq!(audit[2].detail, "moderator");
}

async fn deactivation_goes_by_rank_and_shows_in_the_account(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (root, modo, carol, dave) = (
        fx.register("root").await,
        fx.register("modo").await,
        fx.register("carol").await,
        fx.register("dave").await,
    );
    grant(&fx, &root, ServerRole::Admin).await;
    grant(&fx, &modo, ServerRole::Moderator).await;

    // Nobody without a server role deactivates anyone.
    let refused = fx.set_deactivated(dave.id, true, carol.id).await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    // A moderator deactivates an ordinary account, not an admin or a peer.
    let account = fx.set_deactivated(carol.id, true, modo.id).await.unwrap();
    assert!(account.deactivated_at.is_some());
    for target in [root.id, modo.id] {
        let refused = fx.set_deactivated(target, true, modo.id).await;
        assert!(
            matches!(refused, Err(Error::NotAllowed | Error::Invalid(_))),
            "{refused:?}"
        );
    }
    // Nobody deactivates themselves.
    let own = fx.set_deactivated(root.id, true, root.id).await;
    assert!(matches!(own, Err(Error::Invalid(_))), "{own:?}");
    let again = fx.set_deactivated(carol.id, true, root.id).await;
    assert!(
        matches!(again, Err(Error::Conflict("unchanged"))),
        "{again:?}"
    );

    // The listing shows each account's state, by username.
    let all = fx.accounts(None, None, 10).await.unwrap();
    let names: Vec<_> = all.iter().map(|a| a.user.username.as_str()).collect();
    assert_eq!(names, ["carol", "dave", "modo", "root"]);
    assert!(all[0].deactivated_at.is_some() && all[1].deactivated_at.is_none());
    assert_eq!(all[3].server_role, Some(ServerRole::Admin));
    let page = fx.accounts(None, Some("dave"), 10).await.unwrap();
    assert_eq!(page.len(), 2);
    let found = fx.accounts(Some("CAR"), None, 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].user.id, carol.id);

    // Reactivated, and a deactivated admin's actions are refused.
    let back = fx.set_deactivated(carol.id, false, root.id).await.unwrap();
    assert_eq!(back.deactivated_at, None);
    fx.set_deactivated(modo.id, true, root.id).await.unwrap();
    let stale = fx.set_deactivated(dave.id, true, modo.id).await;
    assert!(matches!(stale, Err(Error::NotAllowed)), "{stale:?}");

    let audit = fx.audit_log(None, 50).await.unwrap();
    let actions: Vec<_> = audit.iter().take(3).map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Deactivate,
            AuditAction::Reactivate,
            AuditAction::Deactivate
        ]
    );
    assert_eq!(audit[2].actor, Some(modo.id));
    assert_eq!(audit[2].target_user, Some(carol.id));
}

async fn reports_queue_once_per_reporter_and_resolve_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob, eve, root) = (
        fx.register("alice").await,
        fx.register("bob").await,
        fx.register("eve").await,
        fx.register("root").await,
    );
    grant(&fx, &root, ServerRole::Admin).await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    let message = fx.send(room.id, bob.id, "m1").await.event;
    let of_message = ReportTarget::Message {
        room_id: room.id,
        event_id: message.id,
    };
    let report = |reporter: &User, target| NewReport {
        reporter: reporter.id,
        target,
        reason: "spam".into(),
    };

    // Only a member of the room reports its message, and only a message.
    let outsider = fx.file_report(report(&eve, of_message)).await;
    assert!(matches!(outsider, Err(Error::NotMember)), "{outsider:?}");
    let not_a_message = ReportTarget::Message {
        room_id: room.id,
        event_id: fx.log(room.id).await[0].id,
    };
    let join = fx.file_report(report(&alice, not_a_message)).await;
    assert!(matches!(join, Err(Error::NotFound)), "{join:?}");
    let nobody = ReportTarget::User {
        user_id: chat_shared::model::UserId::new(),
    };
    let ghost = fx.file_report(report(&alice, nobody)).await;
    assert!(matches!(ghost, Err(Error::NotFound)), "{ghost:?}");

    let first = fx.file_report(report(&alice, of_message)).await.unwrap();
    assert_eq!(first.subject, bob.id);
    assert_eq!(first.resolution, None);
    let twice = fx.file_report(report(&alice, of_message)).await;
    assert!(matches!(twice, Err(Error::Conflict("report"))), "{twice:?}");
    let of_bob = ReportTarget::User { user_id: bob.id };
    let second = fx.file_report(report(&eve, of_bob)).await.unwrap();

    let open = fx.reports(false, None, 10).await.unwrap();
    assert_eq!(open, vec![second.clone(), first.clone()]);
    let older = fx.reports(false, Some(second.id), 10).await.unwrap();
    assert_eq!(older, vec![first.clone()]);

    // Only staff resolve, once.
    let refused = fx.resolve_report(first.id, alice.id, "no".into()).await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    let resolved = fx
        .resolve_report(first.id, root.id, "deleted it".into())
        .await
        .unwrap();
    let resolution = resolved.resolution.clone().expect("resolved");
    assert_eq!(
        (resolution.by, resolution.note.as_str()),
        (Some(root.id), "deleted it")
    );
    let again = fx.resolve_report(first.id, root.id, "again".into()).await;
    assert!(
        matches!(again, Err(Error::Conflict("resolved"))),
        "{again:?}"
    );
    let missing = fx
        .resolve_report(chat_shared::model::ReportId::new(), root.id, "x".into())
        .await;
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");
    assert_eq!(fx.reports(false, None, 10).await.unwrap(), vec![second]);
    assert_eq!(fx.reports(true, None, 10).await.unwrap(), vec![resolved]);
    // Once resolved, the same reporter may report it again.
    fx.file_report(report(&alice, of_message)).await.unwrap();

    let audit = fx.audit_log(None, 1).await.unwrap();
    assert_eq!(audit[0].action, AuditAction::ResolveReport);
    assert_eq!(audit[0].target_id, Some(first.id.0));
    assert_eq!(audit[0].detail, "deleted it");
}

async fn the_audit_log_pages_newest_first(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let root = fx.register("root").await;
    for n in 0..5 {
        let entry = NewAudit {
            actor: Some(root.id),
            detail: format!("entry {n}"),
            ..NewAudit::default()
        };
        fx.record_audit(AuditAction::Kick, entry).await.unwrap();
    }
    let first = fx.audit_log(None, 2).await.unwrap();
    let details: Vec<_> = first.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["entry 4", "entry 3"]);
    let rest = fx.audit_log(Some(first[1].id), 10).await.unwrap();
    let details: Vec<_> = rest.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["entry 2", "entry 1", "entry 0"]);
}
