from .mid_epoch_resume_loop import MidEpochResumeTrainLoop

__all__ = ['MidEpochResumeTrainLoop']
