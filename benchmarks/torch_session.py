"""A transformers PyTorch decoder behind the rollout's session interface (`start`, `extend`, `room`, `decode`), so
the benchmarks drive it with our own host loop (`sampling.rollout`): the same prompts, turn parsing, retriever
calls, turn grammar and budgets, only the decoder differs.

Each `decode` is one `generate` call over the rows that have a budget, left-padded; `generate` keeps no cache
between calls, so every turn re-encodes each row's whole history, as a loop that calls `generate` per turn
does. The turn grammar (`sampling/grammar.py`) is applied as a `LogitsProcessor` with the engine's rules (a
state per row, the half-budget switch, a token only if the turn can still end in the tokens left), so both
sides sample from the same constrained distribution.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from exsearch_jax.sampling import engine


class GrammarProcessor(LogitsProcessor):
  """The turn grammar of `sampling/grammar.py`, one automaton state per row (the engine's `sample` rules)."""

  def __init__(self, grammar, states: Sequence[int], budgets: Sequence[int], prompt_width: int):
    self.allowed = torch.from_numpy(grammar.allowed)
    self.transition = torch.from_numpy(grammar.transition).long()
    self.to_end = torch.from_numpy(grammar.to_end).long()
    self.half_spent = torch.from_numpy(grammar.half_spent).long()
    self.state = torch.tensor(list(states), dtype=torch.long)
    self.budget = torch.tensor(list(budgets), dtype=torch.long)
    self.prompt_width = prompt_width

  def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
    written = input_ids.shape[1] - self.prompt_width
    if written > 0:  # the state the previous token led to
      self.state = self.transition[self.state, input_ids[:, -1].cpu()]
    self.state = torch.where(2 * written >= self.budget, self.half_spent[self.state], self.state)
    fits = 1 + self.to_end[self.transition[self.state]] <= (self.budget - written)[:, None]
    mask = self.allowed[self.state] & fits
    mask = mask | ~mask.any(-1, keepdim=True)  # a row already ended (padding) keeps a valid distribution
    vocab = scores.shape[-1]
    if mask.shape[-1] < vocab:  # the model's vocabulary padded past the tokenizer's: never sampled
      mask = torch.nn.functional.pad(mask, (0, vocab - mask.shape[-1]))
    return scores.masked_fill(~mask[:, :vocab].to(scores.device), float("-inf"))


class RowStops(StoppingCriteria):
  """Per row: its end-of-sequence token, one of the stop sequences, or its own budget."""

  def __init__(self, stops: Sequence[Sequence[int]], eos: Sequence[int], budgets: Sequence[int], prompt_width: int):
    self.stops, self.eos, self.prompt_width = [list(s) for s in stops if len(s)], set(eos), prompt_width
    self.budgets = list(budgets)

  def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
    ids = input_ids[:, self.prompt_width :].tolist()
    return torch.tensor(
        [_end(row, self.stops, self.eos, budget)[0] for row, budget in zip(ids, self.budgets)], device=input_ids.device
    )


def _end(tokens: list, stops: list, eos: set, budget: int) -> tuple[int, int]:
  """(tokens up to and including the first stop, why it ended; 0 = not yet)."""
  for n in range(1, len(tokens) + 1):
    if tokens[n - 1] in eos:
      return n, engine.EOS
    if any(tokens[max(0, n - len(s)) : n] == s for s in stops):
      return n, engine.STOP
    if n >= budget:
      return n, engine.BUDGET
  return 0, 0


class TorchSession:
  """`engine.DecodeSession`'s interface over a transformers model: histories on the host, `generate` per call."""

  def __init__(
      self, model, rows: int, capacity: int, seeds: Sequence[int], sharding=None, shards: int = 1, pad_token_id: int = 0
  ):
    del sharding, shards
    self.model, self.capacity, self.pad = model, int(capacity), pad_token_id
    self.history: list[list[int]] = [[] for _ in range(rows)]
    self.generator_seed = int(seeds[0]) if len(seeds) else 0
    self.generated_tokens = 0  # tokens generate computed, padding rows included
    self.encoded_tokens = 0  # prompt tokens generate re-encoded

  def start(self, prompts: Sequence[Sequence[int]]):
    self.extend(prompts)

  def extend(self, appends: Sequence[Optional[Sequence[int]]]):
    for r, tokens in enumerate(appends):
      self.history[r] += list(tokens or [])

  def room(self, r: int) -> int:
    return self.capacity - len(self.history[r])

  def decode(
      self,
      budgets: Sequence[int],
      temperature: float = 0.0,
      top_p: float = 1.0,
      top_k: int = 0,
      stop=(),
      eos_token_ids: Sequence[int] = (),
      grammar=None,
      states=None,
  ) -> engine.Round:
    live = [r for r, b in enumerate(budgets) if b > 0]
    tokens, logprobs, reasons = [[] for _ in budgets], [[] for _ in budgets], [0] * len(budgets)
    if not live:
      return engine.Round(tokens, logprobs, reasons)
    rows = [self.history[r] for r in live]
    width = max(len(h) for h in rows)
    device = next(self.model.parameters()).device
    ids = torch.tensor([[self.pad] * (width - len(h)) + h for h in rows], device=device)
    mask = torch.tensor([[0] * (width - len(h)) + [1] * len(h) for h in rows], device=device)
    live_budgets = [min(int(budgets[r]), self.room(r)) for r in live]
    processors = LogitsProcessorList()
    if grammar is not None:
      processors.append(GrammarProcessor(grammar, [states[r] for r in live], live_budgets, width))
    stops = list(stop)
    torch.manual_seed(self.generator_seed)
    self.generator_seed += 1
    with torch.no_grad():
      out = self.model.generate(
          input_ids=ids,
          attention_mask=mask,
          do_sample=temperature > 0,
          temperature=temperature or None,
          top_p=top_p if temperature > 0 else None,
          top_k=top_k or None,
          max_new_tokens=max(live_budgets),
          logits_processor=processors,
          pad_token_id=self.pad,
          eos_token_id=list(eos_token_ids) or None,
          stopping_criteria=StoppingCriteriaList([RowStops(stops, eos_token_ids, live_budgets, width)]),
          output_scores=True,
          return_dict_in_generate=True,
      )
    new = out.sequences[:, width:].tolist()
    scores = torch.stack(out.scores, 1).float().log_softmax(-1) if out.scores else None
    self.generated_tokens += len(live) * len(new[0]) if new else 0
    self.encoded_tokens += len(live) * width
    for i, r in enumerate(live):
      n, why = _end(new[i], [list(s) for s in stops if len(s)], set(eos_token_ids), live_budgets[i])
      n = n or len(new[i])
      tokens[r], reasons[r] = new[i][:n], why or engine.BUDGET
      logprobs[r] = [] if scores is None else scores[i, np.arange(n), torch.tensor(new[i][:n])].tolist()
      self.history[r] += tokens[r][:-1]  # the engine's convention: the last token comes with the next extend
    return engine.Round(tokens, logprobs, reasons)
