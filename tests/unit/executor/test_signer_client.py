"""The executor's client of the signer boundary, over an injected transport (``httpx.MockTransport``
answering as ``xorj signer`` does): refusals become the errors the submission algorithm already acts
on, and an answer that is not the vault's signature of the message asked for is never taken."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.null_signer import NullSigner
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from tests.unit.chain.test_chain_jupiter import QUOTE_JSON
from tests.unit.domain.test_trades import pending_trade
from xorj.chain.errors import ChainCallError, MalformedAnswerError, SimulationFailedError, SwapRejectedError
from xorj.chain.jupiter import Quote, QuoteResponse, SwapResponse
from xorj.domain.signing import SigningRefusal
from xorj.domain.trades import ReasonCode
from xorj.executor.signing import SIGNER_METHOD, RefusalAnswer, SignAnswer, SignerClient, SignRequest, VaultNotHeldError

VAULT = Keypair()
QUOTE = Quote(model=QuoteResponse.model_validate(QUOTE_JSON), raw=QUOTE_JSON)


def _unsigned(payer: Keypair = VAULT) -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1))
    message = MessageV0.try_compile(payer.pubkey(), [ix], [], Hash.new_unique())
    return VersionedTransaction(message, [NullSigner(payer.pubkey())])


def _answer(tx: VersionedTransaction) -> SwapResponse:
    return SwapResponse.model_validate({"swapTransaction": base64.b64encode(bytes(tx)).decode(),
                                        "lastValidBlockHeight": 1000})


def _client(handler) -> SignerClient:
    return SignerClient("/nonexistent/signer.sock", transport=httpx.MockTransport(handler))


def _refusal(code: SigningRefusal, status: int, **extra) -> httpx.Response:
    return httpx.Response(status, json=RefusalAnswer(refused=code, detail="why", **extra).model_dump(mode="json"))


def _signing_handler(signer: Keypair, seen: list) -> object:
    def handle(request: httpx.Request) -> httpx.Response:
        asked = SignRequest.model_validate_json(request.content)
        seen.append(asked)
        tx = VersionedTransaction.from_bytes(base64.b64decode(asked.swap["swapTransaction"]))
        signed = VersionedTransaction.populate(tx.message, [signer.sign_message(to_bytes_versioned(tx.message))])
        return httpx.Response(200, json=SignAnswer(transaction=base64.b64encode(bytes(signed)).decode(),
                                                   last_valid_block_height=990, program_ids=["p"]).model_dump())
    return handle


def test_signature_of_the_message_asked_for_is_taken():
    trade = pending_trade(vault=str(VAULT.pubkey()))
    tx, seen = _unsigned(), []
    client = _client(_signing_handler(VAULT, seen))
    signed = asyncio.run(client.sign_swap(trade, _answer(tx), QUOTE))
    assert seen[0].trade_id == trade.trade_id and seen[0].quote == QUOTE_JSON
    assert signed.signature.verify(VAULT.pubkey(), to_bytes_versioned(tx.message))
    assert signed.last_valid_block_height == 990 and signed.quote is QUOTE


def test_another_key_signature_is_refused():
    trade = pending_trade(vault=str(VAULT.pubkey()))
    client = _client(_signing_handler(Keypair(), []))
    with pytest.raises(MalformedAnswerError, match="not the vault's signature"):
        asyncio.run(client.sign_swap(trade, _answer(_unsigned()), QUOTE))


def test_a_signature_of_another_message_is_refused():
    trade = pending_trade(vault=str(VAULT.pubkey()))
    other = _unsigned()

    def handle(request: httpx.Request) -> httpx.Response:
        signed = VersionedTransaction(other.message, [VAULT])
        return httpx.Response(200, json=SignAnswer(transaction=base64.b64encode(bytes(signed)).decode(),
                                                   last_valid_block_height=990, program_ids=[]).model_dump())
    with pytest.raises(MalformedAnswerError):
        asyncio.run(_client(handle).sign_swap(trade, _answer(_unsigned()), QUOTE))


@pytest.mark.parametrize("refusal, status, error, check", [
    (dict(code=SigningRefusal.SWAP_REJECTED, rule="vault-transfer", reason=ReasonCode.SWAP_REJECTED), 403,
     SwapRejectedError, lambda e: e.rule == "vault-transfer" and e.reason is ReasonCode.SWAP_REJECTED),
    (dict(code=SigningRefusal.SIMULATION_FAILED, reason=ReasonCode.SLIPPAGE_EXCEEDED), 422,
     SimulationFailedError, lambda e: e.reason is ReasonCode.SLIPPAGE_EXCEEDED),
    (dict(code=SigningRefusal.VAULT_NOT_HELD), 403, VaultNotHeldError, lambda e: "why" in str(e)),
    (dict(code=SigningRefusal.TRADE_STATE), 409, SwapRejectedError, lambda e: e.rule == "signer:trade-state"),
    (dict(code=SigningRefusal.BUSY), 429, ChainCallError, lambda e: e.method == SIGNER_METHOD),
])
def test_refusals_become_the_errors_submission_acts_on(refusal, status, error, check):
    code = refusal.pop("code")
    trade = pending_trade(vault=str(VAULT.pubkey()))
    client = _client(lambda request: _refusal(code, status, **refusal))
    with pytest.raises(error) as info:
        asyncio.run(client.sign_swap(trade, _answer(_unsigned()), QUOTE))
    assert check(info.value)


def test_public_key_held_and_not_held():
    held = str(VAULT.pubkey())

    def handle(request: httpx.Request) -> httpx.Response:
        vault = request.url.path.rsplit("/", 1)[-1]
        if vault == held:
            return httpx.Response(200, json={"vault": held})
        return _refusal(SigningRefusal.VAULT_NOT_HELD, 404)
    client = _client(handle)
    assert str(asyncio.run(client.public_key(held))) == held
    with pytest.raises(VaultNotHeldError):
        asyncio.run(client.public_key(str(Keypair().pubkey())))


def test_an_unreachable_signer_is_a_wait_not_a_refusal(tmp_path):
    client = SignerClient(str(tmp_path / "absent.sock"))
    with pytest.raises(ChainCallError) as info:
        asyncio.run(client.public_key(str(VAULT.pubkey())))
    assert info.value.method == SIGNER_METHOD and info.value.reason is ReasonCode.RPC_ERROR
    assert not isinstance(info.value, SwapRejectedError)
