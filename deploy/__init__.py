"""Deployment configuration; ``deploy.dr`` holds the disaster-recovery drill."""
