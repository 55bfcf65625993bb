"""What a model call costs: genai-prices' maintained table, or spend.prices for a model it
does not know (or one you pay differently for, such as a self-hosted one at 0)."""

import functools
from decimal import Decimal

from genai_prices import Usage as PricedUsage
from genai_prices import calc_price
from genai_prices.types import ModelPrice

from app.config.errors import ConfigError
from app.config.sections import AppConfig, PriceConfig
from app.llm.base import Usage

# Our provider names as the price table names them; echo costs nothing.
TABLE_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
FREE = ModelPrice(input_mtok=Decimal(0), output_mtok=Decimal(0))


class Prices:
    """Prices by provider and model, each looked up once per process."""

    def __init__(self, overrides: dict[str, PriceConfig]) -> None:
        self._overrides = {key: _price(value) for key, value in overrides.items()}

    def price(self, provider: str, model: str) -> ModelPrice | None:
        """The model's price, or None when neither spend.prices nor the table has one."""
        if (override := self._overrides.get(f"{provider}:{model}")) is not None:
            return override
        if provider == "echo":
            return FREE
        table = TABLE_PROVIDERS.get(provider)
        return _table_price(table, model) if table is not None else None

    def cost(self, provider: str, model: str, usage: Usage) -> Decimal | None:
        """The call's cost in US dollars, or None when the model has no price."""
        if (price := self.price(provider, model)) is None:
            return None
        priced = PricedUsage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        total: Decimal = price.calc_price(priced)["total_price"]
        return total


def check_priced(config: AppConfig) -> None:
    """With a budget in dollars, every model of the chain must have a price: a call of one
    without would cost nothing against the budget (ConfigError naming it)."""
    if not config.spend.in_dollars:
        return
    prices = Prices(config.spend.prices)
    for link in config.llm.chain:
        provider, model = link.provider, link.model
        if prices.price(provider, model) is None:
            raise ConfigError(
                f"spend.budgets are in US dollars but {provider}:{model} has no known price; "
                f'give it one in spend.prices, "{provider}:{model}" with its input and output'
            )


@functools.cache
def _table_price(provider: str, model: str) -> ModelPrice | None:
    # The lookup matches the name against the whole table; the price it finds is kept.
    try:
        found = calc_price(PricedUsage(input_tokens=0), model_ref=model, provider_id=provider)
    except LookupError:
        return None
    return found.model_price


def _price(config: PriceConfig) -> ModelPrice:
    # Cached tokens cost what input tokens cost unless the override says otherwise.
    return ModelPrice(
        input_mtok=config.input,
        output_mtok=config.output,
        cache_read_mtok=config.cache_read if config.cache_read is not None else config.input,
        cache_write_mtok=config.cache_write if config.cache_write is not None else config.input,
    )
