"""berth's key service as AWS KMS (issue 16, first part): the aws CLI and boto3 against
`POST /` with `TrentService.*`, keys wrapped by the data dir's root key."""
import base64
import json
import os
import stat
import subprocess
import uuid

import boto3
from botocore.config import Config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION


def kms(berth, key=None, secret=None, region=REGION, validate=True):
    """A boto3 KMS client; `validate=False` sends what botocore would refuse, to see berth refuse it."""
    return boto3.client("kms", endpoint_url=berth.url, region_name=region,
                        aws_access_key_id=key or berth.admin_key, aws_secret_access_key=secret or berth.admin_secret,
                        config=Config(parameter_validation=validate))


def code_of(call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def aws(berth, tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_ACCESS_KEY_ID=berth.admin_key, AWS_SECRET_ACCESS_KEY=berth.admin_secret,
               AWS_DEFAULT_REGION=REGION)
    p = subprocess.run(["aws", "--endpoint-url", berth.url, "kms", *args, "--output", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout) if p.stdout.strip() else {}


def test_aws_cli_creates_a_key_and_an_alias_and_round_trips_a_secret(berth, tmp_path):
    created = aws(berth, tmp_path, "create-key", "--description", "ci key")["KeyMetadata"]
    key_id = created["KeyId"]
    assert created["Arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"
    assert (created["KeyState"], created["Enabled"], created["KeySpec"], created["KeyUsage"], created["KeyManager"]) == \
        ("Enabled", True, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "CUSTOMER")
    alias = f"alias/ci-{uuid.uuid4().hex[:8]}"
    aws(berth, tmp_path, "create-alias", "--alias-name", alias, "--target-key-id", key_id)
    assert aws(berth, tmp_path, "describe-key", "--key-id", alias)["KeyMetadata"]["KeyId"] == key_id
    listed = aws(berth, tmp_path, "list-aliases", "--key-id", key_id)["Aliases"]
    assert [a["AliasName"] for a in listed] == [alias]
    assert listed[0]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}"

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"hunter2 and more")
    enc = aws(berth, tmp_path, "encrypt", "--key-id", alias, "--plaintext", f"fileb://{secret}")
    assert enc["KeyId"] == created["Arn"]
    blob = tmp_path / "blob"
    blob.write_bytes(base64.b64decode(enc["CiphertextBlob"]))
    dec = aws(berth, tmp_path, "decrypt", "--ciphertext-blob", f"fileb://{blob}")
    assert base64.b64decode(dec["Plaintext"]) == b"hunter2 and more"
    assert dec["KeyId"] == created["Arn"]
    assert any(k["KeyId"] == key_id for k in aws(berth, tmp_path, "list-keys")["Keys"])


def test_contexts_tampering_and_wrong_keys_are_refused(berth):
    c = kms(berth)
    a = c.create_key()["KeyMetadata"]["KeyId"]
    b = c.create_key()["KeyMetadata"]["KeyId"]
    blob = c.encrypt(KeyId=a, Plaintext=b"payload", EncryptionContext={"repo": "x", "team": "y"})["CiphertextBlob"]
    # the context is a map: its order does not matter
    assert c.decrypt(CiphertextBlob=blob, EncryptionContext={"team": "y", "repo": "x"})["Plaintext"] == b"payload"
    assert code_of(c.decrypt, CiphertextBlob=blob, EncryptionContext={"repo": "x"}) == ("InvalidCiphertextException", 400)
    assert code_of(c.decrypt, CiphertextBlob=blob) == ("InvalidCiphertextException", 400)
    tampered = bytearray(blob)
    tampered[-3] ^= 1
    assert code_of(c.decrypt, CiphertextBlob=bytes(tampered), EncryptionContext={"repo": "x", "team": "y"})[0] == "InvalidCiphertextException"
    assert code_of(c.decrypt, CiphertextBlob=b"not a ciphertext at all, at all")[0] == "InvalidCiphertextException"
    assert code_of(c.decrypt, CiphertextBlob=blob, EncryptionContext={"repo": "x", "team": "y"}, KeyId=b)[0] == "IncorrectKeyException"
    assert code_of(c.describe_key, KeyId="nope")[0] == "NotFoundException"
    assert code_of(c.describe_key, KeyId=str(uuid.uuid4()))[0] == "NotFoundException"
    assert code_of(c.describe_key, KeyId="arn:aws:s3:::bucket")[0] == "InvalidArnException"
    assert code_of(kms(berth, validate=False).encrypt, KeyId=a, Plaintext=b"x" * 4097)[0] == "ValidationException"
    assert code_of(c.create_alias, AliasName="alias/aws/mine", TargetKeyId=a)[0] == "InvalidAliasNameException"
    assert code_of(c.create_alias, AliasName="nope", TargetKeyId=a)[0] == "ValidationException"
    alias = f"alias/dup-{uuid.uuid4().hex[:8]}"
    c.create_alias(AliasName=alias, TargetKeyId=a)
    assert code_of(c.create_alias, AliasName=alias, TargetKeyId=b)[0] == "AlreadyExistsException"
    c.update_alias(AliasName=alias, TargetKeyId=b)
    assert c.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == b
    c.delete_alias(AliasName=alias)
    assert code_of(c.describe_key, KeyId=alias)[0] == "NotFoundException"


def test_data_keys_disable_enable_deletion_window_and_rotation(berth):
    c = kms(berth)
    key = c.create_key()["KeyMetadata"]["KeyId"]
    dk = c.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"blob": "sha256:1"})
    assert len(dk["Plaintext"]) == 32
    assert c.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"blob": "sha256:1"})["Plaintext"] == dk["Plaintext"]
    no_plain = c.generate_data_key_without_plaintext(KeyId=key, NumberOfBytes=16)
    assert "Plaintext" not in no_plain and len(c.decrypt(CiphertextBlob=no_plain["CiphertextBlob"])["Plaintext"]) == 16
    assert code_of(c.generate_data_key, KeyId=key)[0] == "ValidationException"

    old = c.encrypt(KeyId=key, Plaintext=b"before rotation")["CiphertextBlob"]
    c.rotate_key_on_demand(KeyId=key)
    new = c.encrypt(KeyId=key, Plaintext=b"after rotation")["CiphertextBlob"]
    assert c.decrypt(CiphertextBlob=old)["Plaintext"] == b"before rotation", "earlier material still decrypts"
    assert c.decrypt(CiphertextBlob=new)["Plaintext"] == b"after rotation"
    assert c.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False
    c.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    status = c.get_key_rotation_status(KeyId=key)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 90)
    unchecked = kms(berth, validate=False)
    assert code_of(unchecked.enable_key_rotation, KeyId=key, RotationPeriodInDays=10)[0] == "ValidationException"

    c.disable_key(KeyId=key)
    assert c.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    assert code_of(c.encrypt, KeyId=key, Plaintext=b"x") == ("DisabledException", 400)
    assert code_of(c.decrypt, CiphertextBlob=old)[0] == "DisabledException"
    c.enable_key(KeyId=key)
    assert c.decrypt(CiphertextBlob=old)["Plaintext"] == b"before rotation"

    assert code_of(unchecked.schedule_key_deletion, KeyId=key, PendingWindowInDays=5)[0] == "ValidationException"
    scheduled = c.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    meta = c.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and "DeletionDate" in meta
    assert code_of(c.encrypt, KeyId=key, Plaintext=b"x")[0] == "KMSInvalidStateException"
    assert code_of(c.enable_key, KeyId=key)[0] == "KMSInvalidStateException"
    c.cancel_key_deletion(KeyId=key)
    assert c.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled", "a cancelled deletion leaves the key disabled"


def test_tags_policies_and_managed_keys(berth):
    c = kms(berth)
    key = c.create_key(Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]["KeyId"]
    c.tag_resource(KeyId=key, Tags=[{"TagKey": "env", "TagValue": "ci"}, {"TagKey": "team", "TagValue": "b"}])
    c.untag_resource(KeyId=key, TagKeys=["env"])
    assert c.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "team", "TagValue": "b"}]
    policy = json.loads(c.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert code_of(c.put_key_policy, KeyId=key, PolicyName="default", Policy="{not json")[0] == "MalformedPolicyDocumentException"

    managed = c.describe_key(KeyId="alias/aws/ecr")["KeyMetadata"]
    assert managed["KeyManager"] == "AWS" and managed["KeyState"] == "Enabled"
    assert c.describe_key(KeyId="alias/aws/ecr")["KeyMetadata"]["KeyId"] == managed["KeyId"], "made once"
    assert c.get_key_rotation_status(KeyId=managed["KeyId"])["KeyRotationEnabled"] is True
    assert code_of(c.disable_key, KeyId=managed["KeyId"])[0] == "UnsupportedOperationException"
    assert code_of(c.delete_alias, AliasName="alias/aws/ecr")[0] == "InvalidAliasNameException"


def test_iam_and_key_policies_decide_who_may_use_a_key(berth, tmp_path):
    c = kms(berth)
    ecr_only_key, ecr_only_secret = berth.create_user(f"ro-{uuid.uuid4().hex[:6]}", policy="ReadOnly")
    ro = kms(berth, ecr_only_key, ecr_only_secret)
    assert code_of(ro.create_key) == ("AccessDeniedException", 400)
    key = c.create_key()["KeyMetadata"]["KeyId"]
    assert code_of(ro.encrypt, KeyId=key, Plaintext=b"x")[0] == "AccessDeniedException"

    doc = tmp_path / "kms-user.json"
    doc.write_text(json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))
    iam_name = f"kms-{uuid.uuid4().hex[:6]}"
    iam_key, iam_secret = berth.create_user(iam_name, policy_file=str(doc))
    via_iam = kms(berth, iam_key, iam_secret)
    blob = via_iam.encrypt(KeyId=key, Plaintext=b"allowed by IAM, delegated by the key policy")["CiphertextBlob"]

    # A key policy that names one user and no longer delegates to IAM: that user needs no
    # identity policy, and the IAM-allowed user is refused.
    named_name = f"named-{uuid.uuid4().hex[:6]}"
    named_key, named_secret = berth.create_user(named_name)
    named_arn = f"arn:aws:iam::{ACCOUNT}:user/{named_name}"
    locked = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": named_arn}, "Action": "kms:*", "Resource": "*"}]}
    c.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(locked))
    assert kms(berth, named_key, named_secret).decrypt(CiphertextBlob=blob)["Plaintext"].startswith(b"allowed by IAM")
    assert code_of(via_iam.decrypt, CiphertextBlob=blob)[0] == "AccessDeniedException"
    assert code_of(c.describe_key, KeyId=key)[0] == "AccessDeniedException", "the admin is not in the key policy either"


def test_root_key_is_private_and_material_never_lies_in_clear(fresh_berth):
    c = kms(fresh_berth)
    key = c.create_key()["KeyMetadata"]["KeyId"]
    dk = c.generate_data_key(KeyId=key, NumberOfBytes=64)
    root = os.path.join(fresh_berth.data_dir, "root.key")
    assert os.path.getsize(root) == 32
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o600
    fresh_berth.restart()
    c = kms(fresh_berth)
    assert c.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"], "keys survive a restart"

    # The material is stored wrapped by the root key: with another root key nothing decrypts
    # (a refusal, never wrong bytes), and the right one brings everything back.
    kept = open(root, "rb").read()
    fresh_berth.stop()
    with open(root, "wb") as f:
        f.write(bytes(32))
    fresh_berth.start(listen=fresh_berth.addr)
    assert code_of(kms(fresh_berth).decrypt, CiphertextBlob=dk["CiphertextBlob"]) == ("KMSInternalException", 500)
    fresh_berth.stop()
    with open(root, "wb") as f:
        f.write(kept)
    fresh_berth.start(listen=fresh_berth.addr)
    c = kms(fresh_berth)
    assert c.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    for dirpath, _, files in os.walk(fresh_berth.data_dir):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                assert dk["Plaintext"] not in fh.read(), f"data key plaintext found in {f}"
    log = open(fresh_berth.log_path, "rb").read()
    assert base64.b64encode(dk["Plaintext"]) not in log and dk["Plaintext"] not in log


def test_kms_encrypted_repositories_name_a_real_key(berth):
    c, ecr = kms(berth), berth.ecr()
    managed = c.describe_key(KeyId="alias/aws/ecr")["KeyMetadata"]["Arn"]
    default = ecr.create_repository(repositoryName=f"kms/d{uuid.uuid4().hex[:8]}",
                                    encryptionConfiguration={"encryptionType": "KMS"})["repository"]
    assert default["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": managed}
    key = c.create_key()["KeyMetadata"]
    alias = f"alias/repo-{uuid.uuid4().hex[:8]}"
    c.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    name = f"kms/a{uuid.uuid4().hex[:8]}"
    named = ecr.create_repository(repositoryName=name, encryptionConfiguration={"encryptionType": "KMS_DSSE", "kmsKey": alias})
    assert named["repository"]["encryptionConfiguration"] == {"encryptionType": "KMS_DSSE", "kmsKey": key["Arn"]}
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["encryptionConfiguration"]["kmsKey"] == key["Arn"]

    c.disable_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=f"kms/x{uuid.uuid4().hex[:8]}",
                              encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key["Arn"]})
    err = e.value.response["Error"]
    assert err["Code"] == "KmsException" and e.value.response["kmsError"] == "DisabledException", e.value.response
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=f"kms/y{uuid.uuid4().hex[:8]}",
                              encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "alias/does-not-exist"})
    assert e.value.response["Error"]["Code"] == "KmsException" and e.value.response["kmsError"] == "NotFoundException"
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=f"kms/z{uuid.uuid4().hex[:8]}",
                              encryptionConfiguration={"encryptionType": "AES256", "kmsKey": key["Arn"]})
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"


def test_signing_keys_sign_verify_and_publish_their_public_key(berth):
    """ECC_NIST_P256 and RSA_2048 SIGN_VERIFY keys; signatures checked by an independent
    implementation (the `cryptography` package) against GetPublicKey's key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    c = kms(berth)
    ecc = c.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert (ecc["KeySpec"], ecc["KeyUsage"], ecc["SigningAlgorithms"]) == ("ECC_NIST_P256", "SIGN_VERIFY", ["ECDSA_SHA_256"])
    assert "EncryptionAlgorithms" not in ecc
    sig = c.sign(KeyId=ecc["KeyId"], Message=b"image digest sha256:abc", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert c.verify(KeyId=ecc["KeyId"], Message=b"image digest sha256:abc", Signature=sig,
                    SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True
    assert code_of(c.verify, KeyId=ecc["KeyId"], Message=b"image digest sha256:abd", Signature=sig,
                   SigningAlgorithm="ECDSA_SHA_256")[0] == "KMSInvalidSignatureException"
    pub = c.get_public_key(KeyId=ecc["KeyId"])
    assert pub["KeySpec"] == "ECC_NIST_P256" and pub["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    key = serialization.load_der_public_key(pub["PublicKey"])
    key.verify(sig, b"image digest sha256:abc", ec.ECDSA(hashes.SHA256()))  # raises if invalid
    with pytest.raises(InvalidSignature):
        key.verify(sig, b"something else", ec.ECDSA(hashes.SHA256()))

    rsa = c.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    rsa_pub = serialization.load_der_public_key(c.get_public_key(KeyId=rsa["KeyId"])["PublicKey"])
    import hashlib
    digest = hashlib.sha256(b"payload").digest()
    pkcs1 = c.sign(KeyId=rsa["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]
    rsa_pub.verify(pkcs1, b"payload", padding.PKCS1v15(), hashes.SHA256())
    pss = c.sign(KeyId=rsa["KeyId"], Message=b"payload", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    rsa_pub.verify(pss, b"payload", padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())

    # Each key does only what its usage allows.
    sym = c.create_key()["KeyMetadata"]["KeyId"]
    assert code_of(c.sign, KeyId=sym, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")[0] == "InvalidKeyUsageException"
    assert code_of(c.encrypt, KeyId=ecc["KeyId"], Plaintext=b"m")[0] == "InvalidKeyUsageException"
    assert code_of(c.sign, KeyId=ecc["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")[0] == "InvalidKeyUsageException"
    assert code_of(c.create_key, KeySpec="ECC_NIST_P256")[0] == "ValidationException", "an ECC key must be SIGN_VERIFY"
    assert code_of(c.enable_key_rotation, KeyId=ecc["KeyId"])[0] == "UnsupportedOperationException"
    assert code_of(c.sign, KeyId=ecc["KeyId"], Message=b"short", MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")[0] == "ValidationException"
    ecr = berth.ecr()
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=f"kms/s{uuid.uuid4().hex[:8]}",
                              encryptionConfiguration={"encryptionType": "KMS", "kmsKey": ecc["Arn"]})
    assert e.value.response["Error"]["Code"] == "KmsException", "a signing key cannot encrypt a repository"
