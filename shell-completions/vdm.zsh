
#compdef vdm

_vdm_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _VDM_COMPLETE=complete_zsh vdm)
}

compdef _vdm_completion vdm

