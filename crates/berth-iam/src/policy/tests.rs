use super::*;

const ACCT: &str = "123456789012";
const OTHER: &str = "210987654321";
const REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/team/app";

fn alice() -> Principal {
    Principal::from_arn("arn:aws:iam::123456789012:user/alice").expect("arn")
}
fn carol() -> Principal {
    Principal::from_arn("arn:aws:iam::123456789012:user/carol").expect("arn")
}
fn bob_other() -> Principal {
    Principal::from_arn("arn:aws:iam::210987654321:user/bob").expect("arn")
}

fn p(json: &str) -> Policy {
    Policy::parse(json).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn err(json: &str) -> String {
    match Policy::parse(json) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

fn allow(actions: &str, resource: &str) -> Policy {
    p(&format!(r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":{actions},"Resource":"{resource}"}}}}"#))
}

struct Q {
    principal: Principal,
    action: &'static str,
    resource: &'static str,
    resource_account: &'static str,
    context: HashMap<String, Vec<String>>,
}

impl Q {
    fn new(principal: Principal, action: &'static str) -> Q {
        Q { principal, action, resource: REPO, resource_account: ACCT, context: HashMap::new() }
    }
    fn ctx(mut self, k: &str, v: &[&str]) -> Q {
        self.context.insert(k.to_string(), v.iter().map(|s| s.to_string()).collect());
        self
    }
    fn decide(&self, identity: &[&Policy], resource: &[&Policy]) -> Decision {
        let req = AuthzRequest {
            principal: &self.principal,
            action: self.action,
            resource: self.resource,
            resource_account: self.resource_account,
            context: &self.context,
        };
        authorize(&req, identity, resource)
    }
}

/// Identity policy allowing everything, with one condition block under test.
fn cond(condition: &str) -> Policy {
    p(&format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}]}}"#))
}

fn holds(condition: &str, q: Q) -> bool {
    q.decide(&[&cond(condition)], &[]) == Decision::Allow
}

fn q() -> Q {
    Q::new(alice(), "ecr:BatchGetImage")
}

// --- basic evaluation -------------------------------------------------------------------

#[test]
fn default_is_implicit_deny() {
    assert_eq!(q().decide(&[], &[]), Decision::ImplicitDeny);
    assert_eq!(q().decide(&[&allow(r#""ecr:PutImage""#, "*")], &[]), Decision::ImplicitDeny);
}

#[test]
fn deny_beats_allow() {
    let allow_all = allow(r#""ecr:*""#, "*");
    let deny = p(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:BatchGetImage","Resource":"*"}]}"#);
    assert_eq!(q().decide(&[&allow_all], &[]), Decision::Allow);
    assert_eq!(q().decide(&[&allow_all, &deny], &[]), Decision::ExplicitDeny);
    assert_eq!(q().decide(&[&deny, &allow_all], &[]), Decision::ExplicitDeny);
    // A deny in a resource policy also beats an identity allow.
    let repo_deny = p(r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"ecr:*"}}"#);
    assert_eq!(q().decide(&[&allow_all], &[&repo_deny]), Decision::ExplicitDeny);
}

#[test]
fn action_wildcards_are_case_insensitive() {
    for pattern in
        [r#""ecr:*""#, r#""*""#, r#""ecr:Batch*""#, r#""ECR:batchgetimage""#, r#""ecr:BatchGet?mage""#, r#"["ecr:PutImage","ecr:*Get*"]"#]
    {
        assert_eq!(q().decide(&[&allow(pattern, "*")], &[]), Decision::Allow, "{pattern}");
    }
    for pattern in [r#""ecr:Batch""#, r#""ecr:BatchGet?""#, r#""s3:*""#, r#""ecr-public:*""#] {
        assert_eq!(q().decide(&[&allow(pattern, "*")], &[]), Decision::ImplicitDeny, "{pattern}");
    }
}

#[test]
fn resource_wildcards_are_case_sensitive() {
    for r in [
        "*",
        REPO,
        "arn:aws:ecr:*:123456789012:repository/*",
        "arn:aws:ecr:us-east-1:123456789012:repository/team/*",
        "arn:aws:ecr:us-east-?:*:repository/team/app",
    ] {
        assert_eq!(q().decide(&[&allow(r#""ecr:*""#, r)], &[]), Decision::Allow, "{r}");
    }
    for r in [
        "arn:aws:ecr:us-east-1:123456789012:repository/TEAM/*",
        "arn:aws:ecr:us-east-1:123456789012:repository/other",
        "arn:aws:ecr:us-west-2:*:*",
    ] {
        assert_eq!(q().decide(&[&allow(r#""ecr:*""#, r)], &[]), Decision::ImplicitDeny, "{r}");
    }
    // Actions without resource-level permissions are requested on "*".
    let mut token = Q::new(alice(), "ecr:GetAuthorizationToken");
    token.resource = "*";
    assert_eq!(token.decide(&[&allow(r#""ecr:*""#, "arn:aws:ecr:*:*:repository/*")], &[]), Decision::ImplicitDeny);
    assert_eq!(token.decide(&[&allow(r#""ecr:*""#, "*")], &[]), Decision::Allow);
}

#[test]
fn not_action_and_not_resource() {
    let all_but_delete =
        p(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":["ecr:Delete*","ecr:BatchDeleteImage"],"Resource":"*"}}"#);
    assert_eq!(q().decide(&[&all_but_delete], &[]), Decision::Allow);
    assert_eq!(Q::new(alice(), "ecr:DeleteRepository").decide(&[&all_but_delete], &[]), Decision::ImplicitDeny);
    assert_eq!(Q::new(alice(), "ecr:batchdeleteimage").decide(&[&all_but_delete], &[]), Decision::ImplicitDeny);

    let not_prod =
        p(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","NotResource":"arn:aws:ecr:*:*:repository/prod/*"}}"#);
    assert_eq!(q().decide(&[&not_prod], &[]), Decision::Allow);
    let mut prod = q();
    prod.resource = "arn:aws:ecr:us-east-1:123456789012:repository/prod/api";
    assert_eq!(prod.decide(&[&not_prod], &[]), Decision::ImplicitDeny);

    // Deny everything except reads.
    let deny_writes = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotAction":["ecr:Get*","ecr:BatchGet*","ecr:Describe*"],"Resource":"*"}}"#,
    );
    let allow_all = allow(r#""*""#, "*");
    assert_eq!(q().decide(&[&allow_all, &deny_writes], &[]), Decision::Allow);
    assert_eq!(Q::new(alice(), "ecr:PutImage").decide(&[&allow_all, &deny_writes], &[]), Decision::ExplicitDeny);
}

// --- principals and accounts -----------------------------------------------------------

fn repo_policy(principal: &str) -> Policy {
    p(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"x","Effect":"Allow","Principal":{principal},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}}]}}"#
    ))
}

#[test]
fn same_account_resource_policy_naming_user_is_enough() {
    let rp = repo_policy(r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#);
    assert_eq!(q().decide(&[], &[&rp]), Decision::Allow);
    assert_eq!(Q::new(alice(), "ecr:PutImage").decide(&[], &[&rp]), Decision::ImplicitDeny);
    assert_eq!(Q::new(carol(), "ecr:BatchGetImage").decide(&[], &[&rp]), Decision::ImplicitDeny);
    // "*" is public: anyone, any account.
    let public = repo_policy(r#""*""#);
    assert_eq!(q().decide(&[], &[&public]), Decision::Allow);
    assert_eq!(repo_policy(r#"{"AWS":"*"}"#).statements().len(), 1);
    assert_eq!(q().decide(&[], &[&repo_policy(r#"{"AWS":"*"}"#)]), Decision::Allow);
}

#[test]
fn same_account_root_principal_delegates_to_identity_policies() {
    // Naming the own account does not by itself grant its users anything (as in AWS)...
    for principal in [r#"{"AWS":"123456789012"}"#, r#"{"AWS":"arn:aws:iam::123456789012:root"}"#] {
        let rp = repo_policy(principal);
        assert_eq!(q().decide(&[], &[&rp]), Decision::ImplicitDeny, "{principal}");
        assert_eq!(q().decide(&[&allow(r#""ecr:BatchGetImage""#, REPO)], &[&rp]), Decision::Allow);
        // ...but the root user is the account itself.
        let root = Principal::from_arn("arn:aws:iam::123456789012:root").expect("arn");
        assert!(root.is_root());
        assert_eq!(Q::new(root, "ecr:BatchGetImage").decide(&[], &[&rp]), Decision::Allow);
    }
}

#[test]
fn cross_account_needs_both_sides() {
    let identity = allow(r#""ecr:BatchGetImage""#, REPO);
    let mut bob = Q::new(bob_other(), "ecr:BatchGetImage");
    assert_eq!(bob.decide(&[&identity], &[]), Decision::ImplicitDeny, "identity alone");
    let rp_user = repo_policy(r#"{"AWS":["arn:aws:iam::210987654321:user/bob"]}"#);
    assert_eq!(bob.decide(&[], &[&rp_user]), Decision::ImplicitDeny, "resource alone");
    assert_eq!(bob.decide(&[&identity], &[&rp_user]), Decision::Allow);
    // The account (bare id or root ARN) matches every principal in it.
    for principal in
        [r#"{"AWS":"210987654321"}"#, r#"{"AWS":"arn:aws:iam::210987654321:root"}"#, r#"{"AWS":["111111111111","210987654321"]}"#]
    {
        assert_eq!(bob.decide(&[&identity], &[&repo_policy(principal)]), Decision::Allow, "{principal}");
    }
    // Another user or account does not.
    for principal in
        [r#"{"AWS":"arn:aws:iam::210987654321:user/eve"}"#, r#"{"AWS":"111111111111"}"#, r#"{"Service":"codebuild.amazonaws.com"}"#]
    {
        assert_eq!(bob.decide(&[&identity], &[&repo_policy(principal)]), Decision::ImplicitDeny, "{principal}");
    }
    // Cross-account means the resource's account differs, not the ARN.
    bob.resource_account = OTHER;
    assert_eq!(bob.decide(&[&identity], &[]), Decision::Allow);
}

#[test]
fn service_principal_never_matches_a_user() {
    let rp = repo_policy(r#"{"Service":["lambda.amazonaws.com","codebuild.amazonaws.com"]}"#);
    assert_eq!(q().decide(&[], &[&rp]), Decision::ImplicitDeny);
    let deny = p(r#"{"Statement":{"Effect":"Deny","Principal":{"Service":"lambda.amazonaws.com"},"Action":"*"}}"#);
    assert_eq!(q().decide(&[&allow(r#""*""#, "*")], &[&deny]), Decision::Allow);
}

#[test]
fn not_principal() {
    // Deny everyone except alice.
    let rp = p(r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"ecr:*"},
            {"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#);
    assert_eq!(q().decide(&[], &[&rp]), Decision::Allow);
    assert_eq!(Q::new(carol(), "ecr:BatchGetImage").decide(&[], &[&rp]), Decision::ExplicitDeny);
}

#[test]
fn resource_policy_statement_without_principal_grants_nothing() {
    let rp = p(r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#);
    assert_eq!(q().decide(&[], &[&rp]), Decision::ImplicitDeny);
    assert!(Policy::parse_resource(r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#).is_err());
}

// --- conditions ------------------------------------------------------------------------

#[test]
fn string_operators() {
    let c = r#"{"StringEquals":{"aws:RequestTag/team":["red","blue"]}}"#;
    assert!(holds(c, q().ctx("aws:RequestTag/team", &["blue"])));
    assert!(!holds(c, q().ctx("aws:RequestTag/team", &["Blue"])));
    assert!(!holds(c, q()), "missing key fails a positive operator");

    let c = r#"{"StringNotEquals":{"aws:RequestTag/team":"red"}}"#;
    assert!(holds(c, q().ctx("aws:RequestTag/team", &["blue"])));
    assert!(!holds(c, q().ctx("aws:RequestTag/team", &["red"])));
    assert!(holds(c, q()), "missing key satisfies a negated operator");

    let c = r#"{"StringEqualsIgnoreCase":{"ecr:ResourceTag/env":"PROD"}}"#;
    assert!(holds(c, q().ctx("ecr:ResourceTag/env", &["prod"])));
    let c = r#"{"StringNotEqualsIgnoreCase":{"ecr:ResourceTag/env":"PROD"}}"#;
    assert!(!holds(c, q().ctx("ecr:ResourceTag/env", &["Prod"])));
    assert!(holds(c, q().ctx("ecr:ResourceTag/env", &["dev"])));

    let c = r#"{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/a*"}}"#;
    assert!(holds(c, q()), "aws:PrincipalArn is derived from the principal");
    assert!(!holds(c, Q::new(carol(), "ecr:BatchGetImage")));
    let c = r#"{"StringNotLike":{"ecr:ResourceTag/env":["prod*","stag?"]}}"#;
    assert!(holds(c, q().ctx("ecr:ResourceTag/env", &["dev"])));
    assert!(!holds(c, q().ctx("ecr:ResourceTag/env", &["production"])));
    assert!(!holds(c, q().ctx("ecr:ResourceTag/env", &["stage"])));

    // Condition key names are case-insensitive.
    assert!(holds(r#"{"StringEquals":{"AWS:PRINCIPALACCOUNT":"123456789012"}}"#, q()));
    assert!(holds(r#"{"StringEquals":{"aws:sourcevpc":"vpc-1"}}"#, q().ctx("aws:SourceVpc", &["vpc-1"])));
}

#[test]
fn multiple_keys_and_values() {
    // Keys AND, values OR, operators AND.
    let c = r#"{"StringEquals":{"k1":["a","b"],"k2":"c"},"Bool":{"aws:SecureTransport":"true"}}"#;
    let base = || q().ctx("k1", &["b"]).ctx("k2", &["c"]).ctx("aws:SecureTransport", &["true"]);
    assert!(holds(c, base()));
    assert!(!holds(c, base().ctx("k2", &["x"])));
    assert!(!holds(c, base().ctx("aws:SecureTransport", &["false"])));
    assert!(!holds(c, base().ctx("k1", &["z"])));
}

#[test]
fn arn_operators() {
    let c = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:codebuild:*:123456789012:project/*"}}"#;
    assert!(holds(c, q().ctx("aws:SourceArn", &["arn:aws:codebuild:eu-west-1:123456789012:project/build"])));
    assert!(!holds(c, q().ctx("aws:SourceArn", &["arn:aws:codebuild:eu-west-1:999999999999:project/build"])));
    // A wildcard stays inside its ARN component.
    let c = r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:s3:*:123456789012:x"}}"#;
    assert!(!holds(c, q().ctx("aws:SourceArn", &["arn:aws:s3:a:b:123456789012:x"])));
    let c = r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}"#;
    assert!(!holds(c, q()));
    assert!(holds(c, Q::new(carol(), "ecr:BatchGetImage")));
    let c = r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:lambda:*"}}"#;
    assert!(holds(c, q()), "missing key satisfies ArnNotLike");
    assert!(holds(r#"{"ArnLike":{"aws:PrincipalArn":"*"}}"#, q()));
}

#[test]
fn bool_operator() {
    let c = r#"{"Bool":{"aws:SecureTransport":"false"}}"#;
    assert!(holds(c, q().ctx("aws:SecureTransport", &["false"])));
    assert!(holds(c, q().ctx("aws:SecureTransport", &["FALSE"])));
    assert!(!holds(c, q().ctx("aws:SecureTransport", &["true"])));
    assert!(!holds(c, q()));
    assert!(holds(r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":true}}"#, q()));
    assert!(!holds(r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":true}}"#, q().ctx("aws:MultiFactorAuthPresent", &["false"])));
}

#[test]
fn ip_operators() {
    let c = r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32","198.51.100.7"]}}"#;
    assert!(holds(c, q().ctx("aws:SourceIp", &["203.0.113.77"])));
    assert!(holds(c, q().ctx("aws:SourceIp", &["2001:db8::1"])));
    assert!(holds(c, q().ctx("aws:SourceIp", &["198.51.100.7"])));
    assert!(!holds(c, q().ctx("aws:SourceIp", &["198.51.100.8"])));
    assert!(!holds(c, q().ctx("aws:SourceIp", &["not-an-ip"])));
    assert!(!holds(c, q()));
    let c = r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    assert!(holds(c, q().ctx("aws:SourceIp", &["192.168.1.1"])));
    assert!(!holds(c, q().ctx("aws:SourceIp", &["10.1.2.3"])));
    assert!(holds(r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, q()));
}

#[test]
fn date_operators() {
    let now = |t: &str| q().ctx("aws:CurrentTime", &[t]);
    assert!(holds(r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#, now("2029-12-31T23:59:59Z")));
    assert!(!holds(r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#, now("2030-01-01T00:00:00Z")));
    assert!(holds(r#"{"DateLessThanEquals":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#, now("2030-01-01T00:00:00Z")));
    assert!(holds(r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"}}"#, now("2024-06-01T12:00:00Z")));
    assert!(!holds(r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"}}"#, now("2019-06-01T12:00:00Z")));
    assert!(holds(r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2020-01-01"}}"#, now("2020-01-01T00:00:00Z")));
    assert!(holds(r#"{"DateEquals":{"aws:CurrentTime":"2020-01-01T00:00:00+01:00"}}"#, now("2019-12-31T23:00:00Z")));
    assert!(holds(r#"{"DateNotEquals":{"aws:CurrentTime":"2020-01-01"}}"#, now("2020-01-02")));
    assert!(!holds(r#"{"DateNotEquals":{"aws:CurrentTime":"2020-01-01"}}"#, now("2020-01-01")));
    // Epoch seconds on either side.
    assert!(holds(r#"{"DateLessThan":{"aws:EpochTime":1700000000}}"#, q().ctx("aws:EpochTime", &["1699999999"])));
    assert!(!holds(r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01"}}"#, q()));
    assert!(holds(r#"{"DateLessThanIfExists":{"aws:CurrentTime":"2030-01-01"}}"#, q()));
}

#[test]
fn numeric_operators() {
    let n = |v: &str| q().ctx("ecr:count", &[v]);
    assert!(holds(r#"{"NumericEquals":{"ecr:count":10}}"#, n("10")));
    assert!(holds(r#"{"NumericEquals":{"ecr:count":"10"}}"#, n("10.0")));
    assert!(holds(r#"{"NumericNotEquals":{"ecr:count":10}}"#, n("11")));
    assert!(!holds(r#"{"NumericNotEquals":{"ecr:count":10}}"#, n("10")));
    assert!(holds(r#"{"NumericLessThan":{"ecr:count":10}}"#, n("9.5")));
    assert!(!holds(r#"{"NumericLessThan":{"ecr:count":10}}"#, n("10")));
    assert!(holds(r#"{"NumericLessThanEquals":{"ecr:count":10}}"#, n("10")));
    assert!(holds(r#"{"NumericGreaterThan":{"ecr:count":10}}"#, n("11")));
    assert!(!holds(r#"{"NumericGreaterThan":{"ecr:count":10}}"#, n("abc")));
    assert!(holds(r#"{"NumericGreaterThanEquals":{"ecr:count":[20,10]}}"#, n("10")));
    assert!(!holds(r#"{"NumericGreaterThanEquals":{"ecr:count":10}}"#, q()));
    assert!(holds(r#"{"NumericGreaterThanEqualsIfExists":{"ecr:count":10}}"#, q()));
}

#[test]
fn null_operator() {
    let absent = r#"{"Null":{"aws:RequestTag/team":"true"}}"#;
    assert!(holds(absent, q()));
    assert!(!holds(absent, q().ctx("aws:RequestTag/team", &["red"])));
    let present = r#"{"Null":{"aws:RequestTag/team":false}}"#;
    assert!(holds(present, q().ctx("aws:RequestTag/team", &["red"])));
    assert!(!holds(present, q()));
    assert!(!holds(present, q().ctx("aws:RequestTag/team", &[])), "an empty value list counts as absent");
}

#[test]
fn if_exists_on_missing_and_present_keys() {
    let c = r#"{"StringEqualsIfExists":{"ecr:ResourceTag/team":"red"}}"#;
    assert!(holds(c, q()), "missing key: IfExists holds");
    assert!(holds(c, q().ctx("ecr:ResourceTag/team", &["red"])));
    assert!(!holds(c, q().ctx("ecr:ResourceTag/team", &["blue"])), "present key is still tested");
    let c = r#"{"StringNotLikeIfExists":{"ecr:ResourceTag/team":"r*"}}"#;
    assert!(holds(c, q()));
    assert!(!holds(c, q().ctx("ecr:ResourceTag/team", &["red"])));
    let c = r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::b"}}"#;
    assert!(holds(c, q()));
}

#[test]
fn set_qualifiers() {
    let any = r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}"#;
    assert!(holds(any, q().ctx("aws:TagKeys", &["owner", "env"])));
    assert!(!holds(any, q().ctx("aws:TagKeys", &["owner"])));
    assert!(!holds(any, q()), "ForAnyValue on a missing key is false");
    assert!(holds(r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"team"}}"#, q()));

    let all = r#"{"ForAllValues:StringLike":{"aws:TagKeys":["team","env*"]}}"#;
    assert!(holds(all, q().ctx("aws:TagKeys", &["team", "environment"])));
    assert!(!holds(all, q().ctx("aws:TagKeys", &["team", "owner"])));
    assert!(holds(all, q()), "ForAllValues on a missing key is vacuously true");

    let none_forbidden = r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret"]}}"#;
    assert!(holds(none_forbidden, q().ctx("aws:TagKeys", &["team", "env"])));
    assert!(!holds(none_forbidden, q().ctx("aws:TagKeys", &["team", "secret"])));
    let some_not = r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["team"]}}"#;
    assert!(holds(some_not, q().ctx("aws:TagKeys", &["team", "env"])));
    assert!(!holds(some_not, q().ctx("aws:TagKeys", &["team"])));

    // Without a qualifier, a multi-valued key matches if any value does (negated: none does).
    assert!(holds(r#"{"StringEquals":{"aws:TagKeys":"env"}}"#, q().ctx("aws:TagKeys", &["team", "env"])));
    assert!(!holds(r#"{"StringNotEquals":{"aws:TagKeys":"env"}}"#, q().ctx("aws:TagKeys", &["team", "env"])));
}

#[test]
fn conditions_on_deny() {
    let deny_insecure = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#,
    );
    let allow_all = allow(r#""*""#, "*");
    assert_eq!(q().ctx("aws:SecureTransport", &["false"]).decide(&[&allow_all], &[&deny_insecure]), Decision::ExplicitDeny);
    assert_eq!(q().ctx("aws:SecureTransport", &["true"]).decide(&[&allow_all], &[&deny_insecure]), Decision::Allow);
}

#[test]
fn policy_variables() {
    let own = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:${aws:PrincipalAccount}:repository/home/${aws:username}/*"}}"#,
    );
    let mut req = q();
    req.resource = "arn:aws:ecr:us-east-1:123456789012:repository/home/alice/tools";
    assert_eq!(req.decide(&[&own], &[]), Decision::Allow);
    req.resource = "arn:aws:ecr:us-east-1:123456789012:repository/home/bob/tools";
    assert_eq!(req.decide(&[&own], &[]), Decision::ImplicitDeny);
    // The value of a variable is literal: a '*' in it is not a wildcard.
    let tagged = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringLike":{"ecr:ResourceTag/owner":"${aws:username}"}}}}"#,
    );
    assert_eq!(q().ctx("ecr:ResourceTag/owner", &["alice"]).decide(&[&tagged], &[]), Decision::Allow);
    let star = Principal { arn: "arn:aws:iam::123456789012:user/*".into(), account: ACCT.into() };
    assert_eq!(Q::new(star, "ecr:BatchGetImage").ctx("ecr:ResourceTag/owner", &["alice"]).decide(&[&tagged], &[]), Decision::ImplicitDeny);
    // Missing variable without a default: no match. With a default: the default.
    let role = Principal::from_arn("arn:aws:iam::123456789012:role/ci").expect("arn");
    let dflt = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"ecr:ResourceTag/owner":"${aws:username, 'nobody'}"}}}}"#,
    );
    assert_eq!(Q::new(role.clone(), "ecr:BatchGetImage").ctx("ecr:ResourceTag/owner", &["nobody"]).decide(&[&dflt], &[]), Decision::Allow);
    assert_eq!(
        Q::new(role, "ecr:BatchGetImage").ctx("ecr:ResourceTag/owner", &["${aws:username}"]).decide(&[&tagged], &[]),
        Decision::ImplicitDeny
    );
    // Version 2008-10-17 has no variables: the text is literal.
    let old = p(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"k":"${aws:username}"}}}}"#,
    );
    assert_eq!(q().ctx("k", &["${aws:username}"]).decide(&[&old], &[]), Decision::Allow);
    // Escapes.
    let esc = p(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringLike":{"k":"a${*}b"}}}}"#,
    );
    assert_eq!(q().ctx("k", &["a*b"]).decide(&[&esc], &[]), Decision::Allow);
    assert_eq!(q().ctx("k", &["axxb"]).decide(&[&esc], &[]), Decision::ImplicitDeny);
}

// --- parsing ---------------------------------------------------------------------------

#[test]
fn statement_forms() {
    let single = p(r#"{"Version":"2012-10-17","Id":"x","Statement":{"Sid":"one","Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#);
    assert_eq!(single.statements().len(), 1);
    assert_eq!(single.statements()[0].sid(), Some("one"));
    assert_eq!(single.statements()[0].effect(), Effect::Allow);
    assert_eq!(single.version(), Version::V2012_10_17);
    assert_eq!(single.id(), Some("x"));
    let no_version =
        p(r#"{"Statement":[{"Effect":"Deny","Action":["ecr:*"],"Resource":["*"]},{"Effect":"Allow","Action":"*","Resource":"*"}]}"#);
    assert_eq!(no_version.version(), Version::V2008_10_17);
    assert_eq!(no_version.statements()[0].effect(), Effect::Deny);
    assert!(Policy::parse_identity(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#).is_ok());
    assert!(Policy::parse_identity(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*"}}"#).is_err());
    assert!(Policy::parse_identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}}"#
    )
    .is_err());
    assert!(Policy::parse_resource(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"ecr:*"}}"#
    )
    .is_ok());
}

#[test]
fn malformed_policies_have_precise_messages() {
    let cases: &[(&str, &str)] = &[
        ("not json", "policy is not valid JSON"),
        ("[]", "policy must be a JSON object"),
        (r#"{"Version":"2012-10-17"}"#, "policy has no Statement"),
        (r#"{"Version":"2013-01-01","Statement":[]}"#, r#"Version must be "2012-10-17" or "2008-10-17", not "2013-01-01""#),
        (r#"{"Version":"2012-10-17","Statement":[]}"#, "Statement must not be empty"),
        (r#"{"Versions":"2012-10-17","Statement":[]}"#, r#"unknown policy element "Versions""#),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"allow","Action":"*","Resource":"*"}]}"#,
            r#"Statement[1].Effect must be Allow or Deny, not "allow""#,
        ),
        (r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#, "Statement[0].Effect is required (Allow or Deny)"),
        (r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#, "Statement[0] must have Action or NotAction"),
        (r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"*"}}"#, "Statement has both Action and NotAction"),
        (r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#, "Statement.Action must not be empty"),
        (r#"{"Statement":{"Effect":"Allow","Action":["ecr:Get",5],"Resource":"*"}}"#, "Statement.Action[1] must be a string"),
        (
            r#"{"Statement":{"Effect":"Allow","Action":["ecr:Get Image"],"Resource":"*"}}"#,
            r#"Statement.Action[0] "ecr:Get Image" is not a valid action"#,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"BatchGetImage","Resource":"*"}}"#,
            r#"Statement.Action[0] "BatchGetImage" is not a valid action"#,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"repo/app"}}"#,
            r#"Statement.Resource[0] "repo/app" must be "*" or an ARN"#,
        ),
        (r#"{"Statement":{"Effect":"Allow","Actions":"*","Resource":"*"}}"#, r#"Statement has unknown element "Actions""#),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLikeX":{"k":"v"}}}}"#,
            "Statement.Condition: unknown condition operator StringLikeX",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForSomeValues:StringLike":{"k":"v"}}}}"#,
            "unknown condition operator ForSomeValues:StringLike",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NullIfExists":{"k":"true"}}}}"#,
            "NullIfExists is not allowed",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.300/8"]}}}}"#,
            r#"Statement.Condition.IpAddress.aws:SourceIp: "10.0.0.300/8" is not an IP address or CIDR block"#,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"next tuesday"}}}}"#,
            r#""next tuesday" is not a date"#,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericEquals":{"n":"ten"}}}}"#,
            r#""ten" is not a number"#,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"b":"yes"}}}}"#,
            r#""yes" is not true or false"#,
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"k":{"x":1}}}}}"#,
            "Statement.Condition.StringEquals.k must be a string",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"k":[]}}}}"#,
            "Statement.Condition.StringEquals.k must not be empty",
        ),
        (r#"{"Statement":{"Effect":"Allow","Principal":"alice","Action":"*"}}"#, "Statement.Principal must be \"*\" or an object"),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["123456789012","alice"]},"Action":"*"}}"#,
            r#"Statement.Principal.AWS[1] "alice" must be "*", a 12-digit account id or an IAM ARN"#,
        ),
        (r#"{"Statement":{"Effect":"Allow","Principal":{"User":"x"},"Action":"*"}}"#, r#"unknown principal type "User""#),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"*"}}"#,
            "Statement has both Principal and NotPrincipal",
        ),
    ];
    for (json, expected) in cases {
        let message = err(json);
        assert!(message.contains(expected), "for {json}\n  got: {message}\n  want: {expected}");
    }
}

#[test]
fn valid_resource_forms() {
    for r in [
        "*",
        "arn:aws:ecr:us-east-1:123456789012:repository/a",
        "arn:aws:ecr:*:*:repository/*",
        "arn:aws:ecr:us-east-1:${aws:PrincipalAccount}:repository/${aws:username}",
    ] {
        allow(r#""ecr:*""#, r);
    }
}

// --- managed policies ------------------------------------------------------------------

#[test]
fn managed_policies_parse_and_grant_documented_actions() {
    for name in MANAGED_POLICY_NAMES {
        let json = managed_policy(name).unwrap_or_else(|| panic!("{name}"));
        Policy::parse_identity(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(managed_policy(&format!("arn:aws:iam::aws:policy/{name}")), Some(json));
    }
    assert_eq!(managed_policy("AdministratorAccess"), None);

    let read_only = p(AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY);
    let power = p(AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER);
    let full = p(AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS);
    let reads = [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetRepositoryPolicy",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetLifecyclePolicy",
        "ecr:GetLifecyclePolicyPreview",
        "ecr:ListTagsForResource",
        "ecr:DescribeImageScanFindings",
    ];
    let pushes = ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"];
    let admin =
        ["ecr:DeleteRepository", "ecr:SetRepositoryPolicy", "ecr:BatchDeleteImage", "ecr:CreateRepository", "ecr:PutLifecyclePolicy"];
    let decide = |policy: &Policy, action: &'static str| Q::new(alice(), action).decide(&[policy], &[]);
    for a in reads {
        assert_eq!(decide(&read_only, a), Decision::Allow, "{a}");
        assert_eq!(decide(&power, a), Decision::Allow, "{a}");
        assert_eq!(decide(&full, a), Decision::Allow, "{a}");
    }
    for a in pushes {
        assert_eq!(decide(&read_only, a), Decision::ImplicitDeny, "{a}");
        assert_eq!(decide(&power, a), Decision::Allow, "{a}");
        assert_eq!(decide(&full, a), Decision::Allow, "{a}");
    }
    for a in admin {
        assert_eq!(decide(&read_only, a), Decision::ImplicitDeny, "{a}");
        assert_eq!(decide(&power, a), Decision::ImplicitDeny, "{a}");
        assert_eq!(decide(&full, a), Decision::Allow, "{a}");
    }
    // Full access may create only the replication service-linked role.
    assert_eq!(decide(&full, "iam:CreateServiceLinkedRole"), Decision::ImplicitDeny);
    let slr = Q::new(alice(), "iam:CreateServiceLinkedRole").ctx("iam:AWSServiceName", &["replication.ecr.amazonaws.com"]);
    assert_eq!(slr.decide(&[&full], &[]), Decision::Allow);
}

#[test]
fn glob_matcher() {
    let g = Glob::literal_pattern;
    assert!(g("*").matches(""));
    assert!(g("a*b*c").matches("aXXbYYc"));
    assert!(g("a*b*c").matches("abc"));
    assert!(!g("a*b*c").matches("abcd"));
    assert!(g("a?c").matches("abc"));
    assert!(!g("a?c").matches("ac"));
    assert!(g("*a*a*a*a*b").matches(&"a".repeat(40).chain_b()));
    assert!(!g("*a*a*a*a*b").matches(&"a".repeat(2000)));
    assert!(g("é*").matches("été"));
}

trait ChainB {
    fn chain_b(self) -> String;
}
impl ChainB for String {
    fn chain_b(mut self) -> String {
        self.push('b');
        self
    }
}

#[test]
fn principal_helpers() {
    assert_eq!(alice().account, ACCT);
    assert!(!alice().is_root());
    assert_eq!(alice().username(), Some("alice"));
    assert_eq!(Principal::from_arn("arn:aws:iam::123456789012:user/path/to/dave").expect("arn").username(), Some("dave"));
    assert_eq!(Principal::from_arn("arn:aws:iam::123456789012:role/ci").expect("arn").username(), None);
    assert_eq!(Principal::from_arn("not-an-arn"), None);
    assert_eq!(Principal::from_arn("arn:aws:iam::12:user/x"), None);
    assert_eq!(Decision::ExplicitDeny.to_string(), "explicit deny");
}

fn resource_statements(n: usize) -> String {
    let one = r#"{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}"#;
    format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, vec![one; n].join(","))
}

fn identity_statements(n: usize) -> String {
    let one = r#"{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*"}"#;
    format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, vec![one; n].join(","))
}

#[test]
fn resource_policies_are_bounded_like_ecrs() {
    // Padding in Id makes an otherwise valid document exactly as long as wanted.
    let padded = |len: usize| {
        let base = r#"{"Version":"2012-10-17","Id":"","Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}}"#;
        base.replacen(r#""Id":"""#, &format!(r#""Id":"{}""#, "x".repeat(len - base.len())), 1)
    };
    assert!(Policy::parse_resource(&padded(MAX_RESOURCE_POLICY_CHARS)).is_ok());
    assert_eq!(
        Policy::parse_resource(&padded(MAX_RESOURCE_POLICY_CHARS + 1)).unwrap_err(),
        PolicyError::TooLong { len: MAX_RESOURCE_POLICY_CHARS + 1, max: MAX_RESOURCE_POLICY_CHARS }
    );
    // Characters, not bytes, as AWS counts them.
    let wide = padded(MAX_RESOURCE_POLICY_CHARS).replace('x', "é");
    assert!(wide.len() > MAX_RESOURCE_POLICY_CHARS && Policy::parse_resource(&wide).is_ok());

    assert!(Policy::parse_resource(&resource_statements(MAX_STATEMENTS)).is_ok());
    assert_eq!(
        Policy::parse_resource(&resource_statements(MAX_STATEMENTS + 1)).unwrap_err(),
        PolicyError::TooManyStatements { count: MAX_STATEMENTS + 1, max: MAX_STATEMENTS }
    );
    // What was stored before the limits still reads back (Policy::parse is not bounded).
    assert_eq!(Policy::parse(&resource_statements(2000)).unwrap().statements().len(), 2000);
}

#[test]
fn identity_policies_are_bounded_like_iams() {
    let doc = identity_statements(80);
    assert!(doc.len() < MAX_IDENTITY_POLICY_SIZE && Policy::parse_identity(&doc).is_ok());
    let big = identity_statements(99);
    let size = big.chars().filter(|c| !c.is_whitespace()).count();
    assert!(size > MAX_IDENTITY_POLICY_SIZE);
    assert_eq!(Policy::parse_identity(&big).unwrap_err(), PolicyError::TooLarge { len: size, max: MAX_IDENTITY_POLICY_SIZE });
    // Whitespace does not count toward IAM's size quota, only toward the document length.
    let airy = doc.replace(',', ",      ");
    assert!(airy.len() > MAX_IDENTITY_POLICY_SIZE && Policy::parse_identity(&airy).is_ok());
    let too_airy = format!("{doc}{}", " ".repeat(MAX_IDENTITY_POLICY_CHARS));
    assert!(matches!(Policy::parse_identity(&too_airy), Err(PolicyError::TooLong { .. })));
    for name in MANAGED_POLICY_NAMES {
        let managed = managed_policy(name).unwrap();
        assert!(Policy::parse_identity(managed).is_ok(), "{name}");
    }
}
