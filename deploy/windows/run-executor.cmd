@echo off
rem Keeps the xtqueue executor running: restarts it 10 s after it exits (crash, or MiniQMT gone at start-up).
rem A clean stop (Ctrl+C / closing the window) ends the loop too: the executor exits 0 then.
setlocal
set XTQ_HOME=C:\xtqueue
rem Installed as the README says: a venv at %XTQ_HOME%\venv (the task runs without the user's PATH).
if not exist "%XTQ_HOME%\logs" mkdir "%XTQ_HOME%\logs"
:loop
"%XTQ_HOME%\venv\Scripts\xtqueue.exe" executor --config "%XTQ_HOME%\executor.toml" >> "%XTQ_HOME%\logs\executor.log" 2>&1
if %ERRORLEVEL% EQU 0 goto end
echo %DATE% %TIME% executor exited with %ERRORLEVEL%, restarting in 10 s >> "%XTQ_HOME%\logs\executor.log"
timeout /t 10 /nobreak > nul
goto loop
:end
endlocal
