// SPDX-License-Identifier: MIT
// Node-API binding of the C reference code: chain steps and verification for
// the differential tests and benchmarks, and the wire layout for the TS mirror.
#include <napi.h>

extern "C" {
#include "mcg/chain.h"
#include "mcg/sha256.h"
#include "mcg/wire.h"
}

namespace {

const uint8_t *Bytes(const Napi::Env &env, const Napi::Value &v, size_t len, const char *name)
{
	if (!v.IsBuffer() && !v.IsTypedArray())
		throw Napi::TypeError::New(env, std::string("\"") + name + "\" expected Uint8Array");
	auto arr = v.As<Napi::Uint8Array>();
	if (arr.ByteLength() != len)
		throw Napi::RangeError::New(env, std::string("\"") + name + "\" expected Uint8Array of length " +
						      std::to_string(len) + ", got length=" +
						      std::to_string(arr.ByteLength()));
	return arr.Data();
}

uint64_t Index(const Napi::Env &env, const Napi::Value &v, const char *name)
{
	if (!v.IsNumber())
		throw Napi::TypeError::New(env, std::string("\"") + name + "\" expected number");
	double d = v.As<Napi::Number>().DoubleValue();
	if (d < 0 || d > 4294967296.0 || d != (double)(uint64_t)d)
		throw Napi::RangeError::New(env, std::string("\"") + name + "\" expected integer in [0, 2^32]");
	return (uint64_t)d;
}

Napi::Value Sha256(const Napi::CallbackInfo &info)
{
	auto env = info.Env();
	if (!info[0].IsTypedArray())
		throw Napi::TypeError::New(env, "\"data\" expected Uint8Array");
	auto data = info[0].As<Napi::Uint8Array>();
	auto out = Napi::Buffer<uint8_t>::New(env, MCG_SHA256_BYTES);
	mcg_sha256(data.Data(), data.ByteLength(), out.Data());
	return out;
}

// chainWalk(chainId, from, steps, value) -> v[from + steps]
Napi::Value ChainWalk(const Napi::CallbackInfo &info)
{
	auto env = info.Env();
	auto id = Bytes(env, info[0], MCG_CHAIN_ID_BYTES, "chainId");
	uint64_t from = Index(env, info[1], "from");
	uint64_t steps = Index(env, info[2], "steps");
	auto value = Bytes(env, info[3], MCG_CHAIN_VALUE_BYTES, "value");
	auto out = Napi::Buffer<uint8_t>::New(env, MCG_CHAIN_VALUE_BYTES);
	mcg_chain_walk(id, from, steps, value, out.Data());
	return out;
}

// chainVerify(chainId, lastIndex, lastValue, index, value) -> verdict number
Napi::Value ChainVerify(const Napi::CallbackInfo &info)
{
	auto env = info.Env();
	auto id = Bytes(env, info[0], MCG_CHAIN_ID_BYTES, "chainId");
	uint64_t last_index = Index(env, info[1], "lastIndex");
	auto last_value = Bytes(env, info[2], MCG_CHAIN_VALUE_BYTES, "lastValue");
	uint64_t index = Index(env, info[3], "index");
	auto value = Bytes(env, info[4], MCG_CHAIN_VALUE_BYTES, "value");
	return Napi::Number::New(env, mcg_chain_verify(id, last_index, last_value, index, value));
}

#define SET(obj, name, value) obj.Set(name, Napi::Number::New(env, (double)(value)))

Napi::Object Layout(Napi::Env env)
{
	auto o = Napi::Object::New(env);
	SET(o, "CHAIN_ID_BYTES", MCG_CHAIN_ID_BYTES);
	SET(o, "CHAIN_VALUE_BYTES", MCG_CHAIN_VALUE_BYTES);
	SET(o, "CHAIN_MAX_SKIP", MCG_CHAIN_MAX_SKIP);
	SET(o, "CHAIN_MAX_LOG2_LENGTH", MCG_CHAIN_MAX_LOG2_LENGTH);
	SET(o, "WIRE_VERSION", MCG_WIRE_VERSION);
	SET(o, "NAME_BYTES", MCG_NAME_BYTES);
	SET(o, "BOOT_TOKEN_BYTES", sizeof(struct mcg_boot_token));
	SET(o, "BOOT_TOKEN_SIGNED_BYTES", MCG_BOOT_TOKEN_SIGNED_BYTES);
	SET(o, "boot.log2_length", offsetof(struct mcg_boot_token, log2_length));
	SET(o, "boot.chain_id", offsetof(struct mcg_boot_token, chain_id));
	SET(o, "boot.customer", offsetof(struct mcg_boot_token, customer));
	SET(o, "boot.node_id", offsetof(struct mcg_boot_token, node_id));
	SET(o, "boot.mib_seconds_per_token", offsetof(struct mcg_boot_token, mib_seconds_per_token));
	SET(o, "boot.expires_unix", offsetof(struct mcg_boot_token, expires_unix));
	SET(o, "boot.vendor_key_id", offsetof(struct mcg_boot_token, vendor_key_id));
	SET(o, "boot.anchor", offsetof(struct mcg_boot_token, anchor));
	SET(o, "boot.signature", offsetof(struct mcg_boot_token, signature));
	SET(o, "MSG_HEADER_BYTES", sizeof(struct mcg_msg_header));
	SET(o, "MSG_BOOT_BYTES", sizeof(struct mcg_msg_boot));
	SET(o, "MSG_PAY_BYTES", sizeof(struct mcg_msg_pay));
	SET(o, "MSG_STATUS_BYTES", sizeof(struct mcg_msg_status));
	SET(o, "MSG_OK_BYTES", sizeof(struct mcg_msg_ok));
	SET(o, "MSG_ERR_BYTES", sizeof(struct mcg_msg_err));
	SET(o, "MAX_DATAGRAM_BYTES", MCG_MAX_DATAGRAM_BYTES);
	SET(o, "header.type", offsetof(struct mcg_msg_header, type));
	SET(o, "header.request_id", offsetof(struct mcg_msg_header, request_id));
	SET(o, "boot.payment", offsetof(struct mcg_msg_boot, payment));
	SET(o, "pay.chain_id", offsetof(struct mcg_msg_pay, chain_id));
	SET(o, "pay.payment", offsetof(struct mcg_msg_pay, payment));
	SET(o, "ok.last_index", offsetof(struct mcg_msg_ok, last_index));
	SET(o, "ok.granted_mib_seconds", offsetof(struct mcg_msg_ok, granted_mib_seconds));
	SET(o, "ok.expires_unix", offsetof(struct mcg_msg_ok, expires_unix));
	SET(o, "err.code", offsetof(struct mcg_msg_err, code));
	SET(o, "err.chain_id", offsetof(struct mcg_msg_err, chain_id));
	SET(o, "MSG_BOOT", MCG_MSG_BOOT);
	SET(o, "MSG_PAY", MCG_MSG_PAY);
	SET(o, "MSG_STATUS", MCG_MSG_STATUS);
	SET(o, "MSG_OK", MCG_MSG_OK);
	SET(o, "MSG_ERR", MCG_MSG_ERR);
	SET(o, "ERR_TRUNCATED", MCG_ERR_TRUNCATED);
	SET(o, "ERR_OVERSIZED", MCG_ERR_OVERSIZED);
	SET(o, "ERR_BAD_MAGIC", MCG_ERR_BAD_MAGIC);
	SET(o, "ERR_BAD_VERSION", MCG_ERR_BAD_VERSION);
	SET(o, "ERR_BAD_TYPE", MCG_ERR_BAD_TYPE);
	SET(o, "ERR_MALFORMED", MCG_ERR_MALFORMED);
	SET(o, "ERR_WRONG_NODE", MCG_ERR_WRONG_NODE);
	SET(o, "ERR_UNKNOWN_VENDOR_KEY", MCG_ERR_UNKNOWN_VENDOR_KEY);
	SET(o, "ERR_BAD_SIGNATURE", MCG_ERR_BAD_SIGNATURE);
	SET(o, "ERR_EXPIRED", MCG_ERR_EXPIRED);
	SET(o, "ERR_UNKNOWN_CHAIN", MCG_ERR_UNKNOWN_CHAIN);
	SET(o, "ERR_REPLAY", MCG_ERR_REPLAY);
	SET(o, "ERR_SKIP_TOO_FAR", MCG_ERR_SKIP_TOO_FAR);
	SET(o, "ERR_MISMATCH", MCG_ERR_MISMATCH);
	SET(o, "ERR_RATE_LIMITED", MCG_ERR_RATE_LIMITED);
	SET(o, "ERR_INTERNAL", MCG_ERR_INTERNAL);
	return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	exports.Set("sha256", Napi::Function::New(env, Sha256));
	exports.Set("chainWalk", Napi::Function::New(env, ChainWalk));
	exports.Set("chainVerify", Napi::Function::New(env, ChainVerify));
	exports.Set("layout", Layout(env));
	return exports;
}

} // namespace

NODE_API_MODULE(mcg_native, Init)
