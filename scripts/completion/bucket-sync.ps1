# PowerShell tab completion for bucket-sync. Click, bucket-sync's CLI library, completes bash, zsh and
# fish itself; for PowerShell this script asks bucket-sync the same way the bash script does (the
# `_BUCKET_SYNC_COMPLETE=bash_complete` protocol: COMP_WORDS and COMP_CWORD in, "type,value" lines out).
# Install: add `. <path>\bucket-sync.ps1` to your $PROFILE (see README, "Shell completion").
# Not run on this project's machines (Linux only); the protocol it relies on is tested there.

Register-ArgumentCompleter -Native -CommandName 'bucket-sync', 'bucket-sync.exe' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $words = @($commandAst.CommandElements | ForEach-Object { $_.ToString() })
    if ($wordToComplete -eq '') { $words += '' }  # completing a new, empty word
    $saved = @{ C = $env:_BUCKET_SYNC_COMPLETE; W = $env:COMP_WORDS; I = $env:COMP_CWORD }
    $env:_BUCKET_SYNC_COMPLETE = 'bash_complete'
    $env:COMP_WORDS = ($words -join ' ')
    $env:COMP_CWORD = [string]($words.Count - 1)
    try {
        $answers = & $words[0] 2>$null
    } finally {
        $env:_BUCKET_SYNC_COMPLETE = $saved.C; $env:COMP_WORDS = $saved.W; $env:COMP_CWORD = $saved.I
    }
    foreach ($answer in $answers) {
        $type, $value = $answer -split ',', 2
        if ($type -eq 'plain') {
            [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
        } elseif ($type -eq 'file' -or $type -eq 'dir') {
            Get-ChildItem -Path "$wordToComplete*" -Directory:($type -eq 'dir') -ErrorAction SilentlyContinue |
                ForEach-Object { [System.Management.Automation.CompletionResult]::new($_.Name, $_.Name, 'ProviderItem', $_.Name) }
        }
    }
}
