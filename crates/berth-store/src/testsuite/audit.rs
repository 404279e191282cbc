//! The audit trail: one hash chain across appends (and nodes), lookups by one attribute,
//! newest first with keyset paging, pruning that keeps the chain's start, hourly digests.

use super::*;

fn chain(prev: &str, record: &str) -> String {
    format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(format!("{prev}{record}").as_bytes()))
}

fn event(i: i64, account: &str, name: &str, at: Millis) -> NewAuditEvent {
    NewAuditEvent {
        event_id: format!("id-{account}-{i}"),
        account: account.into(),
        event_time: at,
        event_name: name.into(),
        event_source: "ecr.amazonaws.com".into(),
        username: if i % 2 == 0 { "alice".into() } else { "bob".into() },
        access_key_id: format!("AKIA{}", i % 3),
        read_only: name.starts_with("Describe"),
        resources: vec![(format!("arn:aws:ecr:us-east-1:{account}:repository/r{}", i % 4), "AWS::ECR::Repository".into())],
        record: format!(r#"{{"eventName":"{name}","n":{i}}}"#),
    }
}

fn query(account: &str, attribute: Option<AuditAttribute>) -> AuditQuery {
    AuditQuery { account: account.into(), attribute, start: None, end: None, before: None, limit: 50 }
}

pub async fn audit_trail(f: Fixture) {
    let s = &f.store;
    let (a, b) = ("111111111111", "222222222222");
    let first: Vec<_> = (0..10).map(|i| event(i, a, if i < 5 { "CreateRepository" } else { "DescribeImages" }, NOW + i)).collect();
    let written = s.append_audit_events(&first, &chain).await.unwrap();
    assert_eq!(written.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(written[0].prev_hash, "0".repeat(64), "the trail starts at the genesis hash");
    // A second node appends after the first's last record.
    let other = f.second_node().await;
    let more: Vec<_> = (10..13).map(|i| event(i, b, "PutImage", NOW + i)).collect();
    let next = other.append_audit_events(&more, &chain).await.unwrap();
    assert_eq!(next[0].seq, 11);
    assert_eq!(next[0].prev_hash, written[9].hash, "one chain across appends and nodes");

    let walked = s.audit_chain(0, 100).await.unwrap();
    assert_eq!(walked.len(), 13);
    let mut prev = "0".repeat(64);
    for row in &walked {
        assert_eq!(row.prev_hash, prev);
        assert_eq!(row.hash, chain(&prev, &row.event.record));
        prev = row.hash.clone();
    }
    assert_eq!(walked[3].event, first[3], "stored as given, resources included");

    // Lookups: an account's own records only, newest first, one attribute.
    let all = s.lookup_audit_events(&query(a, None)).await.unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=10).rev().collect::<Vec<_>>());
    let by = |attr| {
        let s = s.clone();
        async move { s.lookup_audit_events(&query(a, Some(attr))).await.unwrap().into_iter().map(|r| r.seq).collect::<Vec<_>>() }
    };
    assert_eq!(by(AuditAttribute::EventName("CreateRepository".into())).await, vec![5, 4, 3, 2, 1]);
    assert_eq!(by(AuditAttribute::Username("bob".into())).await, vec![10, 8, 6, 4, 2]);
    assert_eq!(by(AuditAttribute::AccessKeyId("AKIA0".into())).await, vec![10, 7, 4, 1]);
    assert_eq!(by(AuditAttribute::ReadOnly(true)).await, vec![10, 9, 8, 7, 6]);
    assert_eq!(by(AuditAttribute::EventId(format!("id-{a}-3"))).await, vec![4]);
    assert_eq!(by(AuditAttribute::EventSource("kms.amazonaws.com".into())).await, Vec::<i64>::new());
    assert_eq!(by(AuditAttribute::ResourceName(format!("arn:aws:ecr:us-east-1:{a}:repository/r1"))).await, vec![10, 6, 2]);
    assert_eq!(by(AuditAttribute::ResourceType("AWS::ECR::Repository".into())).await.len(), 10);
    assert_eq!(by(AuditAttribute::EventName("PutImage".into())).await, Vec::<i64>::new(), "another account's records are not seen");

    // Time range and keyset pages.
    let ranged = AuditQuery { start: Some(NOW + 2), end: Some(NOW + 6), limit: 2, ..query(a, None) };
    let page1 = s.lookup_audit_events(&ranged).await.unwrap();
    assert_eq!(page1.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7, 6]);
    let last = page1.last().unwrap();
    let page2 = s.lookup_audit_events(&AuditQuery { before: Some((last.event.event_time, last.seq)), ..ranged.clone() }).await.unwrap();
    assert_eq!(page2.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 4]);

    // Digests: one per hour, first write wins.
    let hour = s.audit_hour_end(NOW, NOW + 5).await.unwrap();
    assert_eq!(hour, Some((5, walked[4].hash.clone(), 5)));
    assert_eq!(s.audit_hour_end(NOW + 100, NOW + 200).await.unwrap(), None);
    let digest = AuditDigestRow {
        hour_start: NOW,
        last_seq: 5,
        last_hash: walked[4].hash.clone(),
        records: 5,
        key_arn: "k".into(),
        signature: "sig".into(),
        created_at: NOW,
    };
    assert!(s.put_audit_digest(&digest).await.unwrap());
    assert!(!s.put_audit_digest(&AuditDigestRow { signature: "other".into(), ..digest.clone() }).await.unwrap());
    assert_eq!(f.reopen().await.audit_digests(NOW).await.unwrap(), vec![digest]);

    // Pruning cuts the start of the chain and records where it now starts.
    assert_eq!(s.audit_anchor().await.unwrap(), None);
    assert_eq!(s.prune_audit_events(NOW + 4).await.unwrap(), 4);
    assert_eq!(s.audit_anchor().await.unwrap(), Some((4, walked[3].hash.clone())));
    let rest = s.audit_chain(0, 100).await.unwrap();
    assert_eq!(rest.first().map(|r| r.seq), Some(5));
    assert_eq!(s.prune_audit_events(NOW + 1000).await.unwrap(), 9, "everything older");
    let after = s.append_audit_events(&[event(20, a, "PutImage", NOW + 2000)], &chain).await.unwrap();
    assert_eq!((after[0].seq, after[0].prev_hash.as_str()), (14, walked[12].hash.as_str()), "the chain goes on from the anchor");
    assert_eq!(s.lookup_audit_events(&query(a, None)).await.unwrap().len(), 1);
}

/// A batch larger than one multi-row statement (64 + 64 + 16 + 4 + 1 + 1 records, several
/// resources each) keeps seq order, the chain and every resource row.
pub async fn audit_large_batch(f: Fixture) {
    let s = &f.store;
    let a = "111111111111";
    let batch: Vec<_> = (0..150)
        .map(|i| {
            let mut e = event(i, a, "BatchGetImage", NOW + i);
            e.resources.push((format!("arn:aws:ecr:us-east-1:{a}:repository/z{i}"), "AWS::ECR::Repository".into()));
            e
        })
        .collect();
    let written = s.append_audit_events(&batch, &chain).await.unwrap();
    assert_eq!(written.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=150).collect::<Vec<_>>());
    let walked = s.audit_chain(0, 200).await.unwrap();
    assert_eq!(walked.len(), 150);
    let mut prev = "0".repeat(64);
    for (row, given) in walked.iter().zip(&batch) {
        assert_eq!(row.hash, chain(&prev, &row.event.record), "seq {}", row.seq);
        assert_eq!(&row.event, given, "stored as given, both resources included");
        prev = row.hash.clone();
    }
    let found = s
        .lookup_audit_events(&query(a, Some(AuditAttribute::ResourceName("arn:aws:ecr:us-east-1:111111111111:repository/z149".into()))))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![150]);
}
