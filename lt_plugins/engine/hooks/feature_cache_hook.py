"""Extract frozen-backbone features once and train the classifier stages on them."""
import time
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader, Dataset

from lt_plugins.memory.rebalanced_fifo import gather_in_rank_order


class CachedFeatureDataset(Dataset):
    """Frozen-backbone features of a dataset, position ``i`` matching the source's ``i``.

    Holds ``V`` views ``feats (V, N, d)``; fetching position ``i`` returns its views in turn
    (view ``t mod V`` on the ``t``-th fetch), so with ``V`` augmented views each epoch sees
    the next one. Items are ``{'feats': (d,), 'data_samples': DataSample}`` with the source's
    data sample (label, ``sample_idx``, meta). Exposes ``get_gt_labels()`` /
    ``class_counts`` / ``metainfo``, so the original samplers and class-count helpers work.
    ``deepcopy`` returns the same object (the cache is shared, never duplicated).
    """

    def __init__(self, feats: torch.Tensor, data_samples: List, metainfo: Optional[dict] = None,
                 num_classes: Optional[int] = None) -> None:
        self.feats = feats
        self.data_samples = data_samples
        self.labels = np.asarray([int(ds.gt_label[0]) for ds in data_samples], dtype=np.int64)
        self.metainfo = dict(metainfo or {})
        n_cls = num_classes or (len(self.metainfo.get('classes', ())) or
                                (int(self.labels.max()) + 1 if self.labels.size else 0))
        self.class_counts = np.bincount(self.labels, minlength=n_cls).astype(np.int64)
        self._fetches = np.zeros(len(data_samples), dtype=np.int64)

    def __len__(self) -> int:
        return self.feats.shape[1]

    def get_gt_labels(self) -> np.ndarray:
        return self.labels

    def __getitem__(self, i: int) -> dict:
        view = int(self._fetches[i] % self.feats.shape[0])
        self._fetches[i] += 1
        return {'feats': self.feats[view, i], 'data_samples': self.data_samples[i]}

    def __deepcopy__(self, memo):
        return self


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class FeatureCacheHook(Hook):
    """Cached-feature mode for frozen-backbone stages (cRT / LWS / STG stages 2-3).

    Before training, runs the frozen backbone (+ neck) over the training set ``num_views``
    times with the training pipeline (eval mode, no gradients, each rank a strided shard,
    all-gathered), then replaces the train dataloader by one over the cached features that
    reuses the original sampler (class-balanced etc.) and collate function. The model must
    accept feature batches (:class:`FeatureCacheClassifier` does). Every epoch after that
    skips image decoding, the pipeline and the backbone.

    Equivalence: with a deterministic training pipeline and ``num_views=1`` the classifier
    sees the same features as the live run (same sampler order and random draws; equal up
    to float rounding of batched convolutions). With random augmentation, the live run sees
    a fresh view every epoch while the cache cycles through ``num_views`` fixed views: less
    augmentation diversity (use ``num_views`` close to the number of epochs to approach it).

    Args:
        num_views (int): augmented views to cache per sample. Defaults to 1.
        batch_size (int, optional): extraction batch size (default: the train loader's).
        num_workers (int, optional): extraction workers (default: the train loader's).
        storage (str): ``'cpu'`` (default) or ``'device'`` for the cache.
    """

    priority = 'LOW'

    def __init__(self, num_views: int = 1, batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None, storage: str = 'cpu') -> None:
        if int(num_views) < 1:
            raise ValueError(f'FeatureCacheHook num_views must be >= 1, got {num_views}.')
        if storage not in ('cpu', 'device'):
            raise ValueError(f'FeatureCacheHook storage={storage!r}: choose cpu or device.')
        self.num_views = int(num_views)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.storage = storage
        self.extract_seconds = 0.0

    @torch.no_grad()
    def extract(self, model, dataset, collate_fn, batch_size: int, num_workers: int):
        """``(V, N, d)`` features of ``dataset`` and its first-view data samples."""
        rank, world = get_rank(), get_world_size()
        positions = list(range(rank, len(dataset), world))
        loader = DataLoader(torch.utils.data.Subset(dataset, positions), batch_size=batch_size,
                            shuffle=False, num_workers=num_workers, collate_fn=collate_fn,
                            generator=torch.Generator())  # leave the global RNG untouched
        was_training = model.training
        model.eval()
        views, samples = [], [None] * len(dataset)
        try:
            for v in range(self.num_views):
                chunks, local_samples = [], []
                for data in loader:
                    data = model.data_preprocessor(data, False)
                    feats = model.extract_feat(data['inputs'])[-1]
                    chunks.append(feats.float())
                    if v == 0:
                        local_samples += [ds.cpu() for ds in data['data_samples']]
                local = torch.cat(chunks) if chunks else torch.zeros(0, 0)
                pos = torch.as_tensor(positions, device=local.device, dtype=torch.long)
                all_pos, all_feats = gather_in_rank_order(pos, local)
                full = all_feats.new_zeros(len(dataset), all_feats.shape[1])
                full[all_pos] = all_feats
                views.append(full if self.storage == 'device' else full.cpu())
                if v == 0:
                    if world > 1:  # data samples are small: gather them as python objects
                        from mmengine.dist import all_gather_object
                        gathered = all_gather_object(list(zip(positions, local_samples)))
                        for part in gathered:
                            for p, ds in part:
                                samples[p] = ds
                    else:
                        for p, ds in zip(positions, local_samples):
                            samples[p] = ds
        finally:
            model.train(was_training)
        return torch.stack(views), samples

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        if not hasattr(model, 'is_feature_input'):
            raise TypeError(
                f'FeatureCacheHook needs a model that accepts cached features; got '
                f'{type(model).__name__}. Use `model.type=\'FeatureCacheClassifier\'`.')
        loop = runner.train_loop
        loader = loop.dataloader
        bs = self.batch_size or loader.batch_size or loader.batch_sampler.batch_size
        workers = loader.num_workers if self.num_workers is None else self.num_workers
        start = time.perf_counter()
        feats, samples = self.extract(model, loader.dataset, loader.collate_fn, bs, workers)
        self.extract_seconds = time.perf_counter() - start
        cached = CachedFeatureDataset(feats, samples, getattr(loader.dataset, 'metainfo', None))
        if loader.batch_size is not None:  # sampler + batch size: rebuild the same way
            new_loader = DataLoader(cached, batch_size=loader.batch_size,
                                    sampler=loader.sampler, drop_last=loader.drop_last,
                                    collate_fn=loader.collate_fn, num_workers=0,
                                    generator=loader.generator)
        else:
            new_loader = DataLoader(cached, batch_sampler=loader.batch_sampler,
                                    collate_fn=loader.collate_fn, num_workers=0,
                                    generator=loader.generator)
        loop.dataloader = new_loader
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _InfiniteDataloaderIterator(new_loader)
        runner.logger.info(
            f'FeatureCacheHook: cached {self.num_views} view(s) of {len(cached)} samples '
            f'({tuple(feats.shape)}) in {self.extract_seconds:.1f} s; training on cached '
            'features from now on.')
