use super::*;

fn perm(kind: PermType, key: &str, end: &str) -> Permission {
    Permission {
        perm_type: kind as i32,
        key: key.into(),
        range_end: end.into(),
    }
}

/// Auth on, `root` with role root, and `u` with role `r` holding `perms`.
fn state(perms: &[Permission]) -> AuthV3 {
    let mut a = AuthV3::default();
    let ops = [
        AuthV3Op::UserAdd {
            name: ROOT.into(),
            hash: Some("h".into()),
        },
        AuthV3Op::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        },
        AuthV3Op::UserAdd {
            name: "u".into(),
            hash: Some("h".into()),
        },
        AuthV3Op::RoleAdd { name: "r".into() },
        AuthV3Op::UserGrantRole {
            user: "u".into(),
            role: "r".into(),
        },
        AuthV3Op::Enable,
    ];
    for op in ops {
        a.apply(&op, 0).unwrap();
    }
    for p in perms {
        let op = AuthV3Op::RoleGrantPermission {
            name: "r".into(),
            perm: p.clone(),
        };
        a.apply(&op, 0).unwrap();
    }
    a
}

#[test]
fn enabling_needs_a_root_user_with_the_root_role() {
    let mut a = AuthV3::default();
    assert_eq!(
        a.apply(&AuthV3Op::Enable, 0),
        Err(AuthV3Error::RootUserMissing)
    );
    let add = AuthV3Op::UserAdd {
        name: ROOT.into(),
        hash: None,
    };
    a.apply(&add, 0).unwrap();
    assert_eq!(
        a.apply(&AuthV3Op::Enable, 0),
        Err(AuthV3Error::RootRoleMissing)
    );
    assert_eq!(a.apply(&add, 0), Err(AuthV3Error::UserExists));
}

#[test]
fn keys_and_ranges_are_checked_as_etcd_checks_them() {
    use Access::*;
    let a = state(&[
        perm(PermType::Read, "a", "c"),
        perm(PermType::Readwrite, "c", "e"),
        perm(PermType::Write, "k", ""),
        perm(PermType::Read, "x", "\0"),
    ]);
    let u = Some("u");
    assert_eq!(a.check(u, Read, b"b", b""), Ok(()));
    assert_eq!(
        a.check(u, Write, b"b", b""),
        Err(AuthV3Error::PermissionDenied)
    );
    // Two permissions that meet cover the range between them.
    assert_eq!(a.check(u, Read, b"a", b"e"), Ok(()));
    assert_eq!(
        a.check(u, Read, b"a", b"f"),
        Err(AuthV3Error::PermissionDenied)
    );
    assert_eq!(a.check(u, Write, b"k", b""), Ok(()));
    assert_eq!(a.check(u, Write, b"k", b"k\0"), Ok(()));
    assert_eq!(
        a.check(u, Write, b"k", b"l"),
        Err(AuthV3Error::PermissionDenied)
    );
    // "\0": from the key on, in the permission and in the request.
    assert_eq!(a.check(u, Read, b"y", b"\0"), Ok(()));
    assert_eq!(a.check(u, Read, b"zzz", b""), Ok(()));
    assert_eq!(
        a.check(u, Read, b"w", b"\0"),
        Err(AuthV3Error::PermissionDenied)
    );
    assert_eq!(a.check(None, Read, b"b", b""), Err(AuthV3Error::UserEmpty));
    assert_eq!(
        a.check(Some("nobody"), Read, b"b", b""),
        Err(AuthV3Error::PermissionDenied)
    );
    assert_eq!(a.check(Some(ROOT), Write, b"\0", b"\0"), Ok(()));
    assert_eq!(a.check_admin(u), Err(AuthV3Error::PermissionDenied));
    assert_eq!(a.check_admin(Some(ROOT)), Ok(()));
}

#[test]
fn tokens_expire_unless_refreshed_and_go_with_their_user() {
    let mut a = state(&[]);
    let login = AuthV3Op::Authenticate {
        name: "u".into(),
        prefix: "abc".into(),
        ttl_ms: 1000,
    };
    let token = a.apply(&login, 10).unwrap();
    assert_eq!(token, "abc.1");
    assert!(a.token(&token, 500).is_some());
    a.apply(
        &AuthV3Op::Refresh {
            token: token.clone(),
        },
        900,
    )
    .unwrap();
    assert!(a.token(&token, 1500).is_some());
    assert!(a.token(&token, 1900).is_none());
    let revision = a.revision();
    let change = AuthV3Op::UserChangePassword {
        name: "u".into(),
        hash: Some("h2".into()),
    };
    a.apply(&change, 1000).unwrap();
    assert!(a.token(&token, 1000).is_none());
    assert_eq!(a.revision(), revision + 1);
    a.apply(&AuthV3Op::Disable, 0).unwrap();
    assert_eq!(a.apply(&login, 0), Err(AuthV3Error::NotEnabled));
}

#[test]
fn root_is_protected_while_auth_is_on() {
    let mut a = state(&[]);
    let ops = [
        AuthV3Op::UserDelete { name: ROOT.into() },
        AuthV3Op::RoleDelete { role: ROOT.into() },
        AuthV3Op::UserRevokeRole {
            name: ROOT.into(),
            role: ROOT.into(),
        },
    ];
    for op in ops {
        assert_eq!(a.apply(&op, 0), Err(AuthV3Error::InvalidManagement));
    }
    let revoke = AuthV3Op::RoleRevokePermission {
        role: "r".into(),
        key: b"a".to_vec(),
        range_end: Vec::new(),
    };
    assert_eq!(a.apply(&revoke, 0), Err(AuthV3Error::PermissionNotGranted));
    let delete = AuthV3Op::RoleDelete { role: "r".into() };
    a.apply(&delete, 0).unwrap();
    assert!(!a.has_role("u", "r"));
}

#[test]
fn auth_changes_cost_no_revision_and_live_in_snapshots() {
    use crate::v3::{V3Response, V3Write};
    use crate::{Request, Response, StateMachine};
    let mut sm = StateMachine::new();
    let revision = sm.revision();
    let ops = [
        AuthV3Op::UserAdd {
            name: ROOT.into(),
            hash: Some("h".into()),
        },
        AuthV3Op::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        },
        AuthV3Op::Enable,
        AuthV3Op::Authenticate {
            name: ROOT.into(),
            prefix: "abc".into(),
            ttl_ms: 1000,
        },
    ];
    let mut last = None;
    for op in ops {
        let write = V3Write::Auth(op);
        match sm.apply(&Request::V3 { write, now_ms: 5 }) {
            Response::V3 {
                result: Ok(V3Response::Auth(resp)),
                ..
            } => last = Some(resp),
            other => panic!("{other:?}"),
        }
    }
    let resp = last.expect("answered");
    assert_eq!(resp.token, "abc.1");
    assert_eq!(resp.header.map(|h| h.revision), Some(revision));
    assert_eq!(sm.revision(), revision);
    let restored = StateMachine::from_snapshot(&sm.to_snapshot()).unwrap();
    assert_eq!(restored.auth_v3(), sm.auth_v3());
    assert!(restored.auth_v3().token("abc.1", 10).is_some());
    // A snapshot from before v3 auth loads with auth off and no users.
    let mut old: serde_json::Value = serde_json::from_slice(&sm.to_snapshot()).unwrap();
    old.as_object_mut().unwrap().remove("auth_v3");
    let old = StateMachine::from_snapshot(&serde_json::to_vec(&old).unwrap()).unwrap();
    assert_eq!(old.auth_v3(), &AuthV3::default());
}

#[test]
fn a_write_checked_before_an_auth_change_is_refused_at_apply() {
    use crate::v3::V3Write;
    use crate::{Request, Response, StateMachine};
    let mut sm = StateMachine::new();
    let auth = |sm: &mut StateMachine, op| {
        sm.apply(&Request::V3 {
            write: V3Write::Auth(op),
            now_ms: 0,
        })
    };
    let put = |sm: &mut StateMachine, auth_revision| {
        let write = V3Write::Put(musubi_proto::etcdserverpb::PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        });
        match sm.apply(&Request::V3As {
            write,
            now_ms: 0,
            auth_revision,
        }) {
            Response::V3 { result, .. } => result.map(|_| ()),
            other => panic!("{other:?}"),
        }
    };
    // Auth off: whatever revision the check saw.
    assert_eq!(put(&mut sm, 0), Ok(()));
    let user = AuthV3Op::UserAdd {
        name: ROOT.into(),
        hash: None,
    };
    auth(&mut sm, user);
    let grant = AuthV3Op::UserGrantRole {
        user: ROOT.into(),
        role: ROOT.into(),
    };
    auth(&mut sm, grant);
    auth(&mut sm, AuthV3Op::Enable);
    let seen = sm.auth_v3().revision();
    assert_eq!(put(&mut sm, seen), Ok(()));
    let revision = sm.revision();
    auth(&mut sm, AuthV3Op::RoleAdd { name: "r".into() });
    assert_eq!(
        put(&mut sm, seen),
        Err(crate::v3::V3Error::Auth(AuthV3Error::OldRevision))
    );
    assert_eq!(sm.revision(), revision);
}

#[test]
fn only_changes_move_the_auth_revision() {
    let mut a = state(&[]);
    let revision = a.revision();
    let grant_again = AuthV3Op::UserGrantRole {
        user: "u".into(),
        role: "r".into(),
    };
    let login = AuthV3Op::Authenticate {
        name: "u".into(),
        prefix: "abc".into(),
        ttl_ms: 1000,
    };
    for op in [AuthV3Op::Enable, grant_again, login] {
        a.apply(&op, 0).unwrap();
    }
    assert_eq!(a.revision(), revision);
    a.apply(&AuthV3Op::RoleAdd { name: "r2".into() }, 0)
        .unwrap();
    assert_eq!(a.revision(), revision + 1);
}
