"""Edit and variants jobs: each output is one provider edit of the source image, then
cropped or padded to the exact output size. Compared models run the same seeds, so output i of
each model's group is directly comparable."""

from sqlalchemy import select

from app.errors import NotFound
from app.jobs.kinds.base import (
    KindRunner,
    call_with_fallbacks,
    output_details,
    output_seed,
    render_of,
)
from app.jobs.kinds.generate import finish_image
from app.models import Asset
from app.providers.base import EditCall, GenerateResult, InputImage, ModelSpec, Provider, Reference
from app.services.assets import Output
from app.services.prompting import prompt_for


class EditRunner(KindRunner):
    """Edits of a source image, with its mask and references; a variants job is an edit of
    its source on each compared model."""

    async def prepare(self) -> None:
        await super().prepare()
        request = self.request
        self.image = await self.input_image(request["image"])
        self.mask = await self.input_image(request["mask"]) if request.get("mask") else None
        self.references = tuple(
            [
                Reference(await self.input_image(ref["asset_id"]), ref["role"], ref["weight"])
                for ref in request.get("references", [])
            ]
        )

    async def input_image(self, asset_id: str) -> InputImage:
        """An input asset's bytes and facts."""
        async with self.context.sessionmaker() as session:
            asset = await session.scalar(
                select(Asset).where(
                    Asset.id == asset_id, Asset.tenant_id == self.job.tenant_id, Asset.live()
                )
            )
        if asset is None:
            raise NotFound(f"Input asset {asset_id} no longer exists.")
        data = await self.context.storage.get(asset.storage_key)
        return InputImage(asset.id, data, asset.format, *asset.dimensions())

    def parents(self) -> tuple[tuple[str, str], ...]:
        """The inputs each output is made from, with their roles."""
        parents = [(self.image.asset_id, "source")]
        if self.mask is not None:
            parents.append((self.mask.asset_id, "mask"))
        parents.extend((ref.image.asset_id, "reference") for ref in self.references)
        return tuple(parents)

    async def make(self, index: int) -> Output:
        request = self.request
        models, position = self.models_for(index)
        seed = output_seed(request["seed"], position)

        async def call(provider: Provider, spec: ModelSpec) -> GenerateResult:
            prompt = prompt_for(request, spec.id)
            width, height = spec.capabilities.generation_size(
                request["width"],
                request["height"],
                request.get("quality", "auto"),
                masked=self.mask is not None,
            )
            return await provider.edit(
                EditCall(
                    model=spec.name,
                    prompt=prompt["prompt"],
                    negative_prompt=prompt.get("negative_prompt"),
                    image=self.image,
                    mask=self.mask,
                    references=self.references,
                    strength=request.get("strength"),
                    keep=tuple(request.get("keep", ())),
                    variation=request.get("variation"),
                    width=width,
                    height=height,
                    seed=seed,
                    output_format=request["output_format"],
                    render=render_of(request),
                )
            )

        result, facts = await call_with_fallbacks(self.context, models, call)
        details = output_details(result, facts)
        if request.get("variation") is not None:
            details["variation"] = request["variation"]
        encoded = await finish_image(result, request, details)
        return Output(encoded, seed=seed, parents=self.parents(), details=details)
